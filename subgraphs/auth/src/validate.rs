//! Input rules for credentials. Every violation is a `BAD_USER_INPUT` error naming the rule.

use portico_kit::errors::bad_input;

/// Lower-cased username: 3–30 characters of `[a-z0-9_]`.
pub fn username(raw: &str) -> async_graphql::Result<String> {
    let name = raw.trim().to_lowercase();
    let len = name.chars().count();
    if !(3..=30).contains(&len) {
        return Err(bad_input("username must be 3 to 30 characters long"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(bad_input(
            "username may only contain letters a-z, digits and underscores",
        ));
    }
    Ok(name)
}

/// Lower-cased email address of plausible shape (`local@domain.tld`, ≤ 254 characters).
pub fn email(raw: &str) -> async_graphql::Result<String> {
    let email = raw.trim().to_lowercase();
    let invalid = || bad_input("email address is not valid");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(invalid());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    {
        return Err(invalid());
    }
    Ok(email)
}

/// Password: 8–128 characters.
pub fn password(raw: &str) -> async_graphql::Result<()> {
    let len = raw.chars().count();
    if !(8..=128).contains(&len) {
        return Err(bad_input("password must be 8 to 128 characters long"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(username("Alice_1").expect("ok"), "alice_1");
        for bad in [
            "ab",
            "a b c",
            "émile",
            "x".repeat(31).as_str(),
            "semi;colon",
        ] {
            assert!(username(bad).is_err(), "{bad}");
        }
        assert_eq!(email(" Bob@Example.org ").expect("ok"), "bob@example.org");
        for bad in [
            "",
            "bob",
            "bob@",
            "@x.org",
            "bob@localhost",
            "b ob@x.org",
            "a@b@c.org",
            "a@-x.org",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(password("short").is_err());
        assert!(password(&"p".repeat(129)).is_err());
        assert!(password("long enough").is_ok());
    }
}
