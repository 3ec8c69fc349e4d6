//! Log levels shared by the layers that log through httpd (`gateway` per
//! request, `pm` into the main error log); the values are httpd's `APLOG_*`.

/// How serious a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Alert = 1,
    Crit = 2,
    Error = 3,
    Warn = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}
