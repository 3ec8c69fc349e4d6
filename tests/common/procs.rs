//! Processes as /proc shows them: finding the process manager (`fcgi-pm`)
//! among Apache's children, by pid, so tests signal only what they started.

use std::fs;

/// One process: pid, parent, state letter and the kernel's name.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
    pub comm: String,
}

/// The process `pid`, if it exists.
pub fn info(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let comm = stat[open + 1..close].to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Proc { pid, ppid, state, comm })
}

/// Live (non-zombie) children of `ppid`.
pub fn children_of(ppid: i32) -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(info)
        .filter(|p| p.ppid == ppid && p.state != 'Z')
        .collect()
}

/// The live `fcgi-pm` children of Apache's parent `apache`.
pub fn managers(apache: i32) -> Vec<i32> {
    children_of(apache).into_iter().filter(|p| p.comm == "fcgi-pm").map(|p| p.pid).collect()
}
