//! The resource API /v1/me (to be extended).
