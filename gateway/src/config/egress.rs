//! The egress parts of `[delivery]`: extra trusted roots, the egress proxy
//! and the client identities, each read the way deliveries will use it (a
//! certificate that does not load is an error here, not at delivery).

use std::collections::HashSet;
use std::path::Path;

use super::ctx::Ctx;
use super::raw::RawDelivery;
use super::{ClientIdentity, Egress};
use crate::report::error_chain;
use crate::tls;

pub(super) fn validate_egress(ctx: &mut Ctx<'_>, d: &RawDelivery, base_dir: &Path) -> Egress {
    let ca_file = d.ca_file.as_ref().and_then(|s| {
        let path = base_dir.join(ctx.string(s)?);
        match tls::read_certs(&path) {
            Ok(_) => Some(path),
            Err(e) => {
                ctx.error(s.span(), format!("delivery.ca_file: {}", error_chain(&e)));
                None
            }
        }
    });
    let proxy = d.proxy.as_ref().and_then(|s| {
        let v = ctx.string(s)?;
        match url::Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
            _ => {
                ctx.error(
                    s.span(),
                    "delivery.proxy must be an http:// or https:// URL like \"http://proxy.internal:3128\"",
                );
                None
            }
        }
    });
    let no_proxy = d
        .no_proxy
        .iter()
        .flat_map(|l| l.get_ref())
        .filter_map(|s| ctx.string(s))
        .collect();
    let mut names = HashSet::new();
    let mut client_identities = Vec::new();
    for entry in d.client_identities.iter().flatten() {
        let raw = entry.get_ref();
        let mut field = |v: &Option<super::raw::S>, key: &str| match v {
            Some(s) => ctx.string(s).map(|v| (v, s.span())),
            None => {
                ctx.error(entry.span(), format!("client identity is missing `{key}`"));
                None
            }
        };
        let (Some((name, name_at)), Some((cert, _)), Some((key, key_at))) = (
            field(&raw.name, "name"),
            field(&raw.cert, "cert"),
            field(&raw.key, "key"),
        ) else {
            continue;
        };
        if !names.insert(name.clone()) {
            ctx.error(name_at, format!("duplicate client identity {name:?}"));
            continue;
        }
        let identity = ClientIdentity {
            name,
            cert: base_dir.join(cert),
            key: base_dir.join(key),
        };
        match tls::certified_key(&identity.cert, &identity.key) {
            Ok(_) => client_identities.push(identity),
            Err(e) => ctx.error(
                key_at,
                format!("client identity {:?}: {}", identity.name, error_chain(&e)),
            ),
        }
    }
    Egress {
        ca_file,
        proxy,
        no_proxy,
        client_identities,
    }
}
