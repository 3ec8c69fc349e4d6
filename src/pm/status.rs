//! What the manager runs, rendered for the status page (`fastcgi-status`):
//! JSON for monitoring, an HTML table for people.

/// One application as the status page shows it.
#[derive(Debug)]
pub(super) struct AppStatus {
    pub path: String,
    pub kind: &'static str,
    /// The uid/gid of a dynamic application run through the wrapper.
    pub identity: Option<(u32, u32)>,
    /// Static: its socket is open. Dynamic: always.
    pub listening: bool,
    pub failures: u32,
    pub backed_off: bool,
    /// Running instances: pid and seconds up.
    pub instances: Vec<(i32, u64)>,
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` escaped for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The JSON document.
pub(super) fn json(manager_pid: u32, apps: &[AppStatus]) -> String {
    let servers: Vec<String> = apps
        .iter()
        .map(|a| {
            let identity = a.identity.map_or_else(|| "null".to_string(), |(u, g)| format!("\"{u}:{g}\""));
            let instances: Vec<String> =
                a.instances.iter().map(|(pid, up)| format!("{{\"pid\":{pid},\"up\":{up}}}")).collect();
            format!(
                "{{\"path\":{},\"kind\":\"{}\",\"identity\":{identity},\"listening\":{},\"failures\":{},\"backed_off\":{},\"instances\":[{}]}}",
                json_str(&a.path),
                a.kind,
                a.listening,
                a.failures,
                a.backed_off,
                instances.join(",")
            )
        })
        .collect();
    format!("{{\"manager_pid\":{manager_pid},\"servers\":[{}]}}", servers.join(","))
}

/// An HTML section with one table row per application.
pub(super) fn html(manager_pid: u32, apps: &[AppStatus]) -> String {
    let mut out = format!(
        "<h2>Process manager (pid {manager_pid})</h2>\n<table border=\"1\">\n\
         <tr><th>application</th><th>kind</th><th>runs as</th><th>state</th><th>failures</th><th>instances (pid: seconds up)</th></tr>\n"
    );
    for a in apps {
        let identity = a.identity.map_or_else(|| "Apache's user".to_string(), |(u, g)| format!("uid {u}, gid {g}"));
        let state = match (a.backed_off, a.listening) {
            (true, _) => "backed off",
            (false, true) => "ready",
            (false, false) => "no socket",
        };
        let instances: Vec<String> = a.instances.iter().map(|(pid, up)| format!("{pid}: {up}")).collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{identity}</td><td>{state}</td><td>{}</td><td>{}</td></tr>\n",
            html_escape(&a.path),
            a.kind,
            a.failures,
            instances.join(", ")
        ));
    }
    out.push_str("</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<AppStatus> {
        vec![AppStatus {
            path: "/a \"b\" <c>".into(),
            kind: "static",
            identity: None,
            listening: true,
            failures: 2,
            backed_off: false,
            instances: vec![(10, 5), (11, 7)],
        }]
    }

    #[test]
    fn json_and_html_escape_paths() {
        assert_eq!(
            json(1, &sample()),
            "{\"manager_pid\":1,\"servers\":[{\"path\":\"/a \\\"b\\\" <c>\",\"kind\":\"static\",\"identity\":null,\"listening\":true,\"failures\":2,\"backed_off\":false,\"instances\":[{\"pid\":10,\"up\":5},{\"pid\":11,\"up\":7}]}]}"
        );
        let html = html(1, &sample());
        assert!(html.contains("<td>/a &quot;b&quot; &lt;c&gt;</td>"), "{html}");
        assert!(html.contains("<td>10: 5, 11: 7</td>"), "{html}");
        assert_eq!(json_str("a\nb\\"), "\"a\\u000ab\\\\\"");
    }
}
