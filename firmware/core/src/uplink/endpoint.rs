//! Where the uplink connects: the oracle's host and port from its `https://` URL.

/// HTTPS's port when the URL names none.
pub const HTTPS_PORT: u16 = 443;

/// The host and port of a URL the settings accepted (`https://host[:port][/path]`), or `None`
/// for any other text.
pub fn https_host_port(url: &str) -> Option<(&str, u16)> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split_once('/').map_or(rest, |(authority, _)| authority);
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok().filter(|&p| p > 0)?)),
        None => Some((authority, HTTPS_PORT)),
    }
    .filter(|(host, _)| !host.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_the_oracles_url() {
        assert_eq!(https_host_port("https://oracle.nishati.ke"), Some(("oracle.nishati.ke", 443)));
        assert_eq!(https_host_port("https://10.0.0.2:8443/api"), Some(("10.0.0.2", 8443)));
        assert_eq!(https_host_port("https://o.ke/"), Some(("o.ke", 443)));
        assert_eq!(https_host_port("http://o.ke"), None);
        assert_eq!(https_host_port("https://:80"), None);
        assert_eq!(https_host_port("https://o.ke:0"), None);
        assert_eq!(https_host_port(""), None);
    }
}
