//! The status page (`SetHandler fastcgi-status`): every defined server and
//! what the process manager runs; an HTML page, or JSON for monitoring
//! with `?json`.

use std::time::Duration;

use super::{Client, Outcome};
use crate::config::{Config, Server};
use crate::pm::{self, control, html_escape, json_str};

/// Writes the status page for `config` to `client`, as JSON when `json`.
pub fn status_page(client: &mut dyn Client, config: &Config, json: bool) -> Outcome {
    let op = if json { control::Op::Status } else { control::Op::StatusHtml };
    let request = control::Request { op, micros: 0, identity: None, path: b"-".to_vec() };
    let control_path = pm::dynamic_dir(config).join(control::CONTROL_NAME);
    let manager = control::ask(&control_path, &request, Duration::from_secs(5));
    let doc = if json { json_doc(config, manager) } else { html_doc(config, manager) };
    client.set_content_type(if json { "application/json" } else { "text/html; charset=utf-8" });
    // A client that went away needs nothing more.
    client.queue(doc.as_bytes());
    let _ = client.pass(true);
    Outcome::Sent
}

fn kind(s: &Server) -> &'static str {
    if s.spawn.is_some() {
        "static"
    } else {
        "external"
    }
}

/// The server's endpoints, in failover order.
fn endpoints(s: &Server) -> Vec<String> {
    s.endpoints().map(|e| e.to_string()).collect()
}

fn json_doc(config: &Config, manager: Result<Vec<u8>, String>) -> String {
    let defined: Vec<String> = config
        .servers
        .iter()
        .map(|s| {
            let eps: Vec<String> = endpoints(s).iter().map(|e| json_str(e)).collect();
            format!(
                "{{\"path\":{},\"kind\":\"{}\",\"endpoints\":[{}],\"keep_conn\":{}}}",
                json_str(&s.path),
                kind(s),
                eps.join(","),
                s.options.keep_conn
            )
        })
        .collect();
    let manager = match manager {
        Ok(doc) => String::from_utf8_lossy(&doc).into_owned(),
        Err(why) => format!("{{\"error\":{}}}", json_str(&why)),
    };
    format!("{{\"defined\":[{}],\"manager\":{manager}}}\n", defined.join(","))
}

fn html_doc(config: &Config, manager: Result<Vec<u8>, String>) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><title>mod_fastcgi_rs status</title></head><body>\n\
         <h1>mod_fastcgi_rs status</h1>\n<h2>Defined servers</h2>\n<table border=\"1\">\n\
         <tr><th>path</th><th>kind</th><th>endpoints</th><th>-keep-conn</th></tr>\n",
    );
    for s in &config.servers {
        let eps: Vec<String> = endpoints(s).iter().map(|e| html_escape(e)).collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            html_escape(&s.path),
            kind(s),
            eps.join("<br>"),
            if s.options.keep_conn { "on" } else { "off" }
        ));
    }
    out.push_str("</table>\n");
    match manager {
        Ok(section) => out.push_str(&String::from_utf8_lossy(&section)),
        Err(why) => out.push_str(&format!("<p>Process manager: {}</p>\n", html_escape(&why))),
    }
    out.push_str("<p><a href=\"?json\">JSON</a></p>\n</body></html>\n");
    out
}
