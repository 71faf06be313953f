//! TLS (the `tls` feature) against a real `tls-port` server, with certificates
//! made by the test: a private CA, a server certificate for 127.0.0.1, and a
//! client certificate for mutual TLS.

#![cfg(feature = "tls")]

use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use redis::Value;
use redis_resilience_core::{ErrorKind, Request, Sent};
use redis_resilience_service::{Credentials, RedisService, Tls};
use redis_resilience_testkit::{Standalone, reserve_port};
use tower::ServiceExt;

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate and its key, in PEM.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write PEM");
    path.display().to_string()
}

async fn tls_server(pki: &Pki, dir: &Path, auth_clients: bool) -> (Standalone, String) {
    let (cert, key) = pki.leaf(&["127.0.0.1", "localhost"]);
    let tls_port = reserve_port().expect("tls port");
    let server = Standalone::builder()
        .config("tls-port", tls_port.port().to_string())
        .config("tls-cert-file", write(dir, "server.crt", &cert))
        .config("tls-key-file", write(dir, "server.key", &key))
        .config("tls-ca-cert-file", write(dir, "ca.crt", &pki.ca_pem))
        .config("tls-auth-clients", if auth_clients { "yes" } else { "no" })
        .start()
        .await
        .unwrap_or_else(|err| panic!("cannot start a TLS redis-server: {err}"));
    // The reservation only kept the port free until the server bound it.
    drop(tls_port);
    let url = format!("rediss://127.0.0.1:{}", tls_port_of(&server));
    (server, url)
}

fn tls_port_of(server: &Standalone) -> u16 {
    let config = std::fs::read_to_string(server.node().config_path()).expect("config");
    config
        .lines()
        .find_map(|line| line.strip_prefix("tls-port "))
        .and_then(|port| port.trim().parse().ok())
        .expect("tls-port in the config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talks_tls_to_a_tls_port_and_refuses_an_untrusted_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("redis-resilience test CA");
    let (_server, url) = tls_server(&pki, dir.path(), false).await;

    let redis = RedisService::builder()
        .tls(Tls::new().root_cert_pem(pki.ca_pem.clone()))
        .standalone(&url)
        .await
        .expect("TLS connect");
    let set = redis
        .clone()
        .oneshot(Request::new(
            redis::cmd("SET").arg("k").arg("over tls").clone(),
        ))
        .await
        .expect("SET over TLS");
    assert_eq!(set.value, Value::Okay);
    let get = redis
        .oneshot(Request::new(redis::cmd("GET").arg("k").clone()))
        .await
        .expect("GET over TLS");
    assert_eq!(get.value, Value::BulkString(b"over tls".to_vec()));

    // A server whose certificate another CA signed is refused, quickly.
    let stranger = Pki::new("someone else");
    let started = Instant::now();
    let err = RedisService::builder()
        .connect_timeout(Duration::from_millis(500))
        .tls(Tls::new().root_cert_pem(stranger.ca_pem.clone()))
        .standalone(&url)
        .await
        .expect_err("untrusted certificate");
    assert_eq!(
        (err.kind(), err.sent()),
        (&ErrorKind::Connect, Sent::No),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate_and_a_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("redis-resilience test CA");
    let (server, url) = tls_server(&pki, dir.path(), true).await;
    let _: String = server
        .node()
        .query(&["CONFIG", "SET", "requirepass", "tls-pass"])
        .await
        .expect("requirepass");

    let (client_cert, client_key) = pki.leaf(&["client"]);
    let redis = RedisService::builder()
        .credentials(Credentials::password("tls-pass"))
        .tls(
            Tls::new()
                .root_cert_pem(pki.ca_pem.clone())
                .client_identity_pem(client_cert, client_key),
        )
        .standalone(&url)
        .await
        .expect("mutual TLS");
    let pong = redis
        .oneshot(Request::new(redis::cmd("PING").clone()))
        .await
        .expect("PING");
    assert_eq!(pong.value, Value::SimpleString("PONG".into()));

    // Without a client certificate the server hangs up during the handshake.
    let err = RedisService::builder()
        .connect_timeout(Duration::from_millis(500))
        .credentials(Credentials::password("tls-pass"))
        .tls(Tls::new().root_cert_pem(pki.ca_pem.clone()))
        .standalone(&url)
        .await
        .expect_err("no client certificate");
    assert_eq!(err.sent(), Sent::No, "{err}");
}
