//! Schema diff (placeholder).
