//! The status page (`SetHandler fastcgi-status`): defined servers and what
//! the process manager runs, as JSON.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{util, Apache, TestDir};

#[test]
fn status_page_lists_static_external_and_dynamic_servers() {
    let t = TestDir::new("status");
    let app = t.htdocs().join("fd0_app.py");
    std::fs::copy(util::apps_dir().join("fd0_app.py"), &app).unwrap();
    let dynamic = t.htdocs().join("dyn.py");
    std::fs::copy(util::apps_dir().join("fd0_app.py"), &dynamic).unwrap();
    for p in [&app, &dynamic] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let apache = Apache::builder(&t)
        .config(&format!(
            "FastCgiServer {app} -processes 2 -init-start-delay 0\n\
             FastCgiExternalServer {ext} -host 127.0.0.1:9 -keep-conn\n\
             <Directory {htdocs}>\n  Options +ExecCGI\n</Directory>\n\
             <Files dyn.py>\n  SetHandler fastcgi-script\n</Files>\n\
             <Location /fcgi-status>\n  SetHandler fastcgi-status\n</Location>",
            app = app.display(),
            ext = t.htdocs().join("ext").display(),
            htdocs = t.htdocs().display(),
        ))
        .start();
    assert_eq!(apache.get("/dyn.py").status, 200, "{}", apache.error_log());
    assert!(util::wait_until(Duration::from_secs(10), || apache
        .get("/fcgi-status?json")
        .text()
        .matches("\"pid\"")
        .count()
        >= 3));
    let r = apache.get("/fcgi-status?json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let doc = r.text();
    assert!(doc.contains(&format!("{{\"path\":\"{}\",\"kind\":\"static\"", app.display())), "{doc}");
    assert!(
        doc.contains(&format!(
            "\"path\":\"{}\",\"kind\":\"external\",\"endpoints\":[\"127.0.0.1:9\"],\"keep_conn\":true",
            t.htdocs().join("ext").display()
        )),
        "{doc}"
    );
    assert!(
        doc.contains(&format!("{{\"path\":\"{}\",\"kind\":\"dynamic\",\"identity\":null", dynamic.display())),
        "{doc}"
    );
    assert!(doc.contains("\"manager_pid\":"), "{doc}");
    // Two static instances and one dynamic one, with their uptimes.
    assert_eq!(doc.matches("\"up\":").count(), 3, "{doc}");

    // The scoreboard has the processes the manager runs, for every child.
    let processes = |doc: &str, path: &str| -> Option<usize> {
        let at = doc.find(&format!("{{\"path\":\"{path}\",\"kind\""))?;
        let rest = &doc[at..];
        let p = rest.find("\"processes\":{\"count\":")? + "\"processes\":{\"count\":".len();
        rest[p..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let app_path = app.display().to_string();
    let dyn_path = dynamic.display().to_string();
    assert!(
        util::wait_until(Duration::from_secs(10), || {
            let doc = apache.get("/fcgi-status?json").text();
            processes(&doc, &app_path) == Some(2) && processes(&doc, &dyn_path) == Some(1)
        }),
        "{}",
        apache.get("/fcgi-status?json").text()
    );

    // The same for people.
    let r = apache.get("/fcgi-status");
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").is_some_and(|c| c.starts_with("text/html")));
    let page = r.text();
    assert!(page.contains("<title>FastCGI status</title>"), "{page}");
    assert!(page.contains(&format!("<tr data-row=\"{}\">", dynamic.display())), "{page}");
    assert!(page.contains(&format!("<span class=\"kind\">dynamic</span>{}", dynamic.display())), "{page}");
    assert!(page.contains(&format!("<span class=\"kind\">static</span>{}", app.display())), "{page}");
    assert!(page.contains("data-endpoint=\"127.0.0.1:9\""), "{page}");
    assert_eq!(page.matches("<tr data-pid=").count(), 3, "{page}");
}
