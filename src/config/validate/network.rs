//! `[[tls.cert]]`, `trusted_proxies` and `[limits]`.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::super::Limits;
use super::super::file::{LimitsFile, TlsFile};
use super::super::locate::Seg;
use super::{Validator, key};

impl Validator<'_> {
    /// `[[tls.cert]]`: every file read and the key checked against its certificate now, so a
    /// bad file is an error naming it and never a failed handshake later.
    pub(super) fn certs(&mut self, t: &TlsFile) -> crate::certs::Certs {
        let mut certs = crate::certs::Certs::default();
        let at = |i: usize, k: &str| {
            vec![
                Seg::Key("tls".into()),
                Seg::Key("cert".into()),
                Seg::Index(i),
                Seg::Key(k.into()),
            ]
        };
        for (i, c) in t.cert.iter().enumerate() {
            let hosts: Vec<String> = c
                .hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect();
            if hosts.is_empty()
                || hosts
                    .iter()
                    .any(|h| h.is_empty() || h.contains(['/', ' ', ':']))
            {
                self.error(
                    &at(i, "hosts"),
                    "list the host names this certificate serves",
                );
                continue;
            }
            let (Some(cert), Some(key)) = (&c.cert, &c.key) else {
                let missing = if c.cert.is_none() { "cert" } else { "key" };
                self.error(
                    &[
                        Seg::Key("tls".into()),
                        Seg::Key("cert".into()),
                        Seg::Index(i),
                    ],
                    format!("missing key `{missing}` (a PEM file)"),
                );
                continue;
            };
            match crate::certs::load_key_pair(&self.resolve(cert), &self.resolve(key)) {
                Ok(pair) => certs.add(&hosts, pair),
                Err((crate::certs::PairFile::Cert, e)) => self.error(&at(i, "cert"), e),
                Err((crate::certs::PairFile::Key, e)) => self.error(&at(i, "key"), e),
            }
        }
        certs
    }

    pub(super) fn trusted_proxies(&mut self, list: &[String]) -> Vec<ipnet::IpNet> {
        let mut nets = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let parsed = s
                .parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(n) => nets.push(n),
                Err(_) => self.error(
                    &[Seg::Key("trusted_proxies".into()), Seg::Index(i)],
                    format!("{s:?} is not an address or a CIDR block such as \"10.0.0.0/8\""),
                ),
            }
        }
        nets
    }

    /// `[limits]`: the timeouts, then the sizes and counts; each the default unless set.
    pub(super) fn limits(&mut self, l: &LimitsFile) -> Limits {
        let with_timeouts = self.limit_timeouts(l, Limits::default());
        self.limit_sizes(l, with_timeouts)
    }

    /// The `[limits]` timeouts, over `d`.
    fn limit_timeouts(&mut self, l: &LimitsFile, d: Limits) -> Limits {
        let mut dur = |k: &str, val: &Option<String>, def: Duration| {
            self.duration(&key(&["limits", k]), val.as_ref(), def)
        };
        Limits {
            header_timeout: dur("header_timeout", &l.header_timeout, d.header_timeout),
            idle_timeout: dur("idle_timeout", &l.idle_timeout, d.idle_timeout),
            body_timeout: dur("body_timeout", &l.body_timeout, d.body_timeout),
            write_timeout: dur("write_timeout", &l.write_timeout, d.write_timeout),
            origin_connect_timeout: dur(
                "origin_connect_timeout",
                &l.origin_connect_timeout,
                d.origin_connect_timeout,
            ),
            origin_response_timeout: dur(
                "origin_response_timeout",
                &l.origin_response_timeout,
                d.origin_response_timeout,
            ),
            drain_timeout: dur("drain_timeout", &l.drain_timeout, d.drain_timeout),
            event_heartbeat: dur("event_heartbeat", &l.event_heartbeat, d.event_heartbeat),
            ..d
        }
    }

    /// The `[limits]` sizes and counts, over `d`.
    fn limit_sizes(&mut self, l: &LimitsFile, d: Limits) -> Limits {
        Limits {
            max_header_bytes: self.limit_count(
                "max_header_bytes",
                l.max_header_bytes,
                8192..=1 << 24,
                d.max_header_bytes,
            ),
            max_uri_bytes: self.limit_count(
                "max_uri_bytes",
                l.max_uri_bytes,
                256..=1 << 20,
                d.max_uri_bytes,
            ),
            max_connections: self.limit_count(
                "max_connections",
                l.max_connections,
                1..=u64::MAX,
                d.max_connections,
            ),
            max_event_streams: self.limit_count(
                "max_event_streams",
                l.max_event_streams,
                0..=u64::MAX,
                d.max_event_streams,
            ),
            max_body: self.max_body(l.max_body.as_ref(), d.max_body),
            ..d
        }
    }

    /// A `[limits]` count within `range`, or the default with an error naming the key.
    fn limit_count(
        &mut self,
        k: &str,
        val: Option<u64>,
        range: RangeInclusive<u64>,
        def: usize,
    ) -> usize {
        match val {
            None => def,
            Some(n) if range.contains(&n) => n as usize,
            Some(_) => {
                let msg = if *range.end() == u64::MAX {
                    format!("must be at least {}", range.start())
                } else {
                    format!("must be between {} and {}", range.start(), range.end())
                };
                self.error(&key(&["limits", k]), msg);
                def
            }
        }
    }

    /// `limits.max_body`: a size such as "10MB".
    fn max_body(&mut self, val: Option<&String>, def: u64) -> u64 {
        let Some(s) = val else { return def };
        match s.parse::<bytesize::ByteSize>() {
            Ok(b) => b.as_u64(),
            Err(e) => {
                self.error(
                    &key(&["limits", "max_body"]),
                    format!("{s:?} is not a size ({e}); write e.g. \"10MB\""),
                );
                def
            }
        }
    }
}
