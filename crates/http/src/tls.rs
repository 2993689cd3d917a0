//! The server's rustls configuration for HTTPS: the shared one of `pki::tls` (its own
//! certificate, client certificates verified against the service's client CA, a connection
//! without one let through so the request can be answered with a JSON 401) plus ALPN.

use std::sync::Arc;

use rustls::server::ServerConfig;
use sip_settings_pki::PemPair;
use sip_settings_pki::tls::ServerCert;

/// Builds the server configuration from the server certificate and key and the client CA (DER).
pub fn server_config(server: &PemPair, client_ca_der: &[u8]) -> Result<ServerConfig, String> {
    server_config_with(ServerCert::new(server)?, client_ca_der)
}

/// Builds the server configuration that presents `cert`, which may be replaced while the
/// server runs (certificate rotation without a restart).
pub fn server_config_with(
    cert: Arc<ServerCert>,
    client_ca_der: &[u8],
) -> Result<ServerConfig, String> {
    let mut config = sip_settings_pki::tls::server_config_with(cert, client_ca_der)?;
    // `http/1.0` too: a client that offers only it is served HTTP/1.0 (RFC 7301 registers it).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(config)
}
