//! The status page (`SetHandler fastcgi-status`): every defined server and
//! what the process manager runs, as JSON for monitoring.

use std::time::Duration;

use super::{Client, Outcome};
use crate::config::Config;
use crate::pm::{self, control, json_str};
use crate::transport::Endpoint;

/// Writes the status document for `config` to `client`.
pub fn status_page(client: &mut dyn Client, config: &Config) -> Outcome {
    let request = control::Request { op: control::Op::Status, micros: 0, identity: None, path: b"-".to_vec() };
    let control_path = pm::dynamic_dir(config).join(control::CONTROL_NAME);
    let manager = match control::ask(&control_path, &request, Duration::from_secs(5)) {
        Ok(doc) => String::from_utf8_lossy(&doc).into_owned(),
        Err(why) => format!("{{\"error\":{}}}", json_str(&why)),
    };
    let defined: Vec<String> = config
        .servers
        .iter()
        .map(|s| {
            let endpoint = match &s.endpoint {
                Endpoint::Unix(p) => p.display().to_string(),
                Endpoint::Tcp { spec, .. } => spec.clone(),
            };
            format!(
                "{{\"path\":{},\"kind\":\"{}\",\"endpoint\":{},\"keep_conn\":{}}}",
                json_str(&s.path),
                if s.spawn.is_some() { "static" } else { "external" },
                json_str(&endpoint),
                s.options.keep_conn
            )
        })
        .collect();
    let doc = format!("{{\"defined\":[{}],\"manager\":{manager}}}\n", defined.join(","));
    client.set_content_type("application/json");
    match client.send(doc.as_bytes(), true) {
        Ok(()) | Err(_) => Outcome::Sent,
    }
}
