//! The `-option value` lists of FastCgiServer, FastCgiExternalServer and
//! FastCgiConfig: names case-insensitive, values validated with the
//! original's error form `<Directive> <path>: invalid value for <opt>: <why>`.

/// Options every kind of application shares: how a request talks to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppOptions {
    /// `-appConnTimeout`: seconds a connect may take; 0 blocks (default 0).
    pub app_conn_timeout: u32,
    /// `-idle-timeout`: seconds without I/O before a request is aborted,
    /// including the wait for the first byte (default 30).
    pub idle_timeout: u32,
    /// `-pass-header`: request headers passed as `HTTP_<NAME>` even when
    /// httpd would withhold them (Authorization).
    pub pass_headers: Vec<String>,
    /// `-flush`: send each piece of output to the client at once.
    pub flush: bool,
    /// `-nph`: the application writes the whole HTTP response itself.
    pub nph: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            app_conn_timeout: 0,
            idle_timeout: 30,
            pass_headers: Vec::new(),
            flush: false,
            nph: false,
        }
    }
}

/// Which directive's option list is being parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OptionSet {
    External,
}

/// What an option list said; `socket` and `host` are checked by the caller,
/// which knows which combinations its directive allows.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub app: AppOptions,
    pub socket: Option<String>,
    pub host: Option<String>,
}

pub(super) fn parse_options(
    directive: &str,
    path: &str,
    words: &[String],
    set: OptionSet,
) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut words = words.iter();
    while let Some(opt) = words.next() {
        let invalid = |why: &str| format!("{directive} {path}: invalid value for {opt}: {why}");
        let mut value = || words.next().ok_or_else(|| invalid("missing"));
        match (set, opt.to_ascii_lowercase().as_str()) {
            (OptionSet::External, "-appconntimeout") => {
                parsed.app.app_conn_timeout = number(value()?, 0).map_err(|w| invalid(&w))?
            }
            (OptionSet::External, "-idle-timeout") => {
                parsed.app.idle_timeout = number(value()?, 1).map_err(|w| invalid(&w))?
            }
            (OptionSet::External, "-pass-header") => {
                let name = value()?;
                if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':') {
                    return Err(invalid("expected a header name"));
                }
                parsed.app.pass_headers.push(name.clone());
            }
            (OptionSet::External, "-flush") => parsed.app.flush = true,
            (OptionSet::External, "-nph") => parsed.app.nph = true,
            (OptionSet::External, "-socket") => {
                let v = value()?;
                if v.is_empty() {
                    return Err(invalid("empty"));
                }
                parsed.socket = Some(v.clone());
            }
            (OptionSet::External, "-host") => parsed.host = Some(value()?.clone()),
            _ => return Err(format!("{directive} {path}: invalid option: {opt}")),
        }
    }
    Ok(parsed)
}

fn number(word: &str, min: u32) -> Result<u32, String> {
    match word.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("expected a whole number >= {min}, got \"{word}\"")),
    }
}
