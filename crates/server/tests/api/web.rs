//! The web settings page in a real browser (to be written).
