//! Calls to the admin listener (with the bearer token when one is set), `/metrics` read through
//! a Prometheus text parser, and the visitor helpers admin tests share.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::{Client, Gateway, JSON, Reply, wait_until};

/// How long admin and reload tests wait for anything.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Calls to the admin listener.
#[derive(Clone)]
pub struct Admin {
    pub addr: SocketAddr,
    pub host: String,
    pub token: Option<String>,
}

impl Admin {
    pub fn of(gw: &Gateway) -> Admin {
        let addr = gw
            .running
            .as_ref()
            .expect("a running gateway")
            .admin_addr
            .expect("admin listener");
        Admin {
            addr,
            host: addr.to_string(),
            token: None,
        }
    }

    /// The same listener called with another Host header.
    pub fn with_host(&self, host: &str) -> Admin {
        Admin {
            host: host.to_string(),
            ..self.clone()
        }
    }

    /// Exactly the headers given.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut c = Client {
            addr: self.addr,
            host: self.host.clone(),
            cookies: Default::default(),
        };
        c.send(method, path, headers, body).await
    }

    /// The token (if any) and, with a body, `Content-Type: application/json`.
    pub async fn send(&self, method: &str, path: &str, body: &str) -> Reply {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        if !body.is_empty() {
            headers.push(("content-type", JSON));
        }
        self.raw(method, path, &headers, body).await
    }

    pub async fn room(&self, name: &str) -> Value {
        let r = self.send("GET", &format!("/api/v1/rooms/{name}"), "").await;
        assert_eq!(r.status, 200, "GET room {name}: {}", r.body);
        r.json()
    }

    pub async fn patch(&self, name: &str, body: &str) -> Reply {
        self.send("PATCH", &format!("/api/v1/rooms/{name}"), body)
            .await
    }

    /// PATCH that must succeed; the ROOM it answers.
    pub async fn patch_ok(&self, name: &str, body: &str) -> Value {
        let r = self.patch(name, body).await;
        assert_eq!(r.status, 200, "PATCH {body}: {}", r.body);
        r.json()
    }

    pub async fn config(&self) -> Value {
        let r = self.send("GET", "/api/v1/config", "").await;
        assert_eq!(r.status, 200, "GET config: {}", r.body);
        r.json()
    }

    /// Waits until `last_reload.result` is `want`; the whole `/api/v1/config` answer.
    pub async fn wait_reload(&self, want: &str) -> Value {
        wait_until(LIMIT, &format!("last_reload {want}"), || async {
            let j = self.config().await;
            (j["last_reload"]["result"] == want).then_some(j)
        })
        .await
    }

    /// The value of `name` with all of `labels` in `/metrics`, if the series exists.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let r = self.send("GET", "/metrics", "").await;
        assert_eq!(r.status, 200);
        let lines = r.body.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .and_then(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    }
}

/// A new visitor's first `GET /` as an app (JSON).
pub async fn visit(gw: &Gateway, host: &str) -> (Client, Reply) {
    let mut c = gw.client(host);
    let r = c.get("/", JSON).await;
    (c, r)
}

/// The visitor's status JSON (must be a known session). Like the page, it waits as told when
/// it asks sooner than the poll floor allows (429 with `Retry-After`).
pub async fn status(c: &Client) -> Value {
    let mut c = c.clone();
    loop {
        let r = c.get("/__anteroom/status", JSON).await;
        if r.status == 429 {
            let wait: u64 = r
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            continue;
        }
        assert_eq!(r.status, 200, "status: {}", r.body);
        return r.json();
    }
}

/// Waits until the visitor's status says `want`; that status.
pub async fn wait_state(c: &Client, want: &str) -> Value {
    wait_until(LIMIT, &format!("state {want}"), || {
        let c = c.clone();
        async move {
            let j = status(&c).await;
            (j["state"] == want).then_some(j)
        }
    })
    .await
}
