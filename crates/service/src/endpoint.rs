//! Turning what a user typed (a `redis://` URL or `host:port`) into a node
//! address and a redis-rs client for it, with credentials and TLS applied.

use redis::{ConnectionAddr, IntoConnectionInfo};
use redis_resilience_core::{Error, NodeAddr};

use crate::config::{Credentials, Tls};

/// One parsed endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) addr: NodeAddr,
    pub(crate) credentials: Credentials,
    pub(crate) database: Option<i64>,
    pub(crate) tls: bool,
}

/// Parses `redis://[user:pass@]host:port[/db]`, `rediss://…` or `host:port`.
pub(crate) fn parse(input: &str) -> Result<Endpoint, Error> {
    let input = input.trim();
    if input.is_empty() {
        return Err(Error::config(
            "empty address: expected host:port or a redis:// URL",
        ));
    }
    if !input.contains("://") {
        let addr = NodeAddr::parse(input)
            .filter(|addr| addr.port() != 0)
            .ok_or_else(|| {
                Error::config(format!(
                    "invalid address {input:?}: expected host:port or a redis:// URL"
                ))
            })?;
        return Ok(Endpoint {
            addr,
            credentials: Credentials::default(),
            database: None,
            tls: false,
        });
    }
    let info = input
        .into_connection_info()
        .map_err(|err| Error::config(format!("invalid redis URL {}: {err}", redact(input))))?;
    let (addr, tls) = match info.addr() {
        ConnectionAddr::Tcp(host, port) => (NodeAddr::new(host, *port), false),
        ConnectionAddr::TcpTls { host, port, .. } => (NodeAddr::new(host, *port), true),
        _ => {
            return Err(Error::config(format!(
                "unsupported address {}: only TCP (redis:// or rediss://) is supported",
                redact(input)
            )));
        }
    };
    if addr.port() == 0 || addr.host().is_empty() {
        return Err(Error::config(format!(
            "invalid address in {}",
            redact(input)
        )));
    }
    let settings = info.redis_settings();
    Ok(Endpoint {
        addr,
        credentials: Credentials {
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
        },
        database: Some(settings.db()),
        tls,
    })
}

/// The URL without its credentials, for error messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://<redacted>{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// How clients for the nodes of one deployment are made.
#[derive(Debug, Clone)]
pub(crate) struct ClientFactory {
    pub(crate) credentials: Credentials,
    pub(crate) database: i64,
    pub(crate) tls: Option<Tls>,
}

impl ClientFactory {
    /// A redis-rs client for `addr`.
    pub(crate) fn client(&self, addr: &NodeAddr) -> Result<redis::Client, Error> {
        let connection_addr = if self.tls.is_some() {
            ConnectionAddr::TcpTls {
                host: addr.host().to_owned(),
                port: addr.port(),
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(addr.host().to_owned(), addr.port())
        };
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.database);
        if let Some(username) = &self.credentials.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.credentials.password {
            settings = settings.set_password(password);
        }
        let info = connection_addr
            .into_connection_info()
            .map_err(|err| Error::config(format!("connection info for {addr}: {err}")))?
            .set_redis_settings(settings);
        let client = match &self.tls {
            Some(tls) => with_tls(info, tls),
            None => redis::Client::open(info),
        };
        client.map_err(|err| Error::config(format!("client for {addr}: {err}")))
    }
}

#[cfg(feature = "tls")]
fn with_tls(info: redis::ConnectionInfo, tls: &Tls) -> redis::RedisResult<redis::Client> {
    let client_tls = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.clone(),
        }),
        _ => None,
    };
    redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls,
            root_cert: tls.root_cert_pem.clone(),
        },
    )
}

/// Unreachable: `Config::validate` refuses TLS without the `tls` feature.
#[cfg(not(feature = "tls"))]
fn with_tls(_info: redis::ConnectionInfo, _tls: &Tls) -> redis::RedisResult<redis::Client> {
    Err(redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "tls requested but redis-resilience-service was built without the `tls` feature",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_addresses() {
        let plain = parse("127.0.0.1:6379").map_err(|e| e.to_string());
        assert_eq!(plain.map(|e| e.addr), Ok(NodeAddr::new("127.0.0.1", 6379)));
        let url = parse("redis://app:s3cret@localhost:7000/2").map_err(|e| e.to_string());
        let url = url
            .as_ref()
            .map(|e| (&e.addr, e.credentials.username.as_deref(), e.database));
        assert_eq!(
            url,
            Ok((&NodeAddr::new("localhost", 7000), Some("app"), Some(2)))
        );
    }

    #[test]
    fn bad_input_is_a_clear_config_error_without_the_password() {
        for bad in [
            "",
            "  ",
            "localhost",
            "localhost:notaport",
            "localhost:0",
            ":6379",
            "redis://",
            "unix:///tmp/x.sock",
        ] {
            let err = parse(bad).err().map(|e| e.kind().clone());
            assert_eq!(
                err,
                Some(redis_resilience_core::ErrorKind::Config),
                "{bad:?}"
            );
        }
        let err = parse("redis://user:hunter2@[bad")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
