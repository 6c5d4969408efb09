//! Integration tests of the auth subgraph over real HTTP, on SQLite and PostgreSQL.

#[test]
fn exported_sdl_matches_the_committed_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../supergraph/auth.graphql");
    let sdl = portico_auth::sdl();
    if std::env::var("UPDATE_SDL").is_ok_and(|v| v == "1") {
        std::fs::write(path, &sdl).expect("write the SDL file");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "supergraph/auth.graphql differs from portico_auth::sdl(); rerun with UPDATE_SDL=1"
    );
}
