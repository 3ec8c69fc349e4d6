//! The process manager's part of `?json`: what runs, from its answer to
//! [`control::Op::Status`].

use super::json_str;
use crate::pm::control;

/// The manager's answer as the JSON the page has always carried; Err for
/// an answer that does not decode.
pub(super) fn json(answer: &[u8]) -> Result<String, String> {
    let (pid, apps) = control::decode_status(answer).ok_or("a malformed answer from the process manager")?;
    let servers: Vec<String> = apps
        .iter()
        .map(|a| {
            let identity = a.identity.map_or_else(|| "null".to_string(), |(u, g)| format!("\"{u}:{g}\""));
            let instances: Vec<String> =
                a.instances.iter().map(|(pid, up)| format!("{{\"pid\":{pid},\"up\":{up}}}")).collect();
            format!(
                "{{\"path\":{},\"kind\":\"{}\",\"identity\":{identity},\"listening\":{},\"failures\":{},\"backed_off\":{},\"instances\":[{}]}}",
                json_str(&a.path),
                if a.dynamic { "dynamic" } else { "static" },
                a.listening,
                a.failures,
                a.backed_off,
                instances.join(",")
            )
        })
        .collect();
    Ok(format!("{{\"manager_pid\":{pid},\"servers\":[{}]}}", servers.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_answer_with_escaped_paths() {
        let apps = vec![control::AppStatus {
            path: "/a \"b\" <c>".into(),
            dynamic: false,
            identity: None,
            listening: true,
            failures: 2,
            backed_off: false,
            instances: vec![(10, 5), (11, 7)],
        }];
        assert_eq!(
            json(&control::encode_status(1, &apps)).unwrap(),
            "{\"manager_pid\":1,\"servers\":[{\"path\":\"/a \\\"b\\\" <c>\",\"kind\":\"static\",\"identity\":null,\"listening\":true,\"failures\":2,\"backed_off\":false,\"instances\":[{\"pid\":10,\"up\":5},{\"pid\":11,\"up\":7}]}]}"
        );
        assert!(json(b"x").is_err());
    }
}
