//! From the file as written to hosts: the group graph, group depths, and each
//! host's groups and merged vars, following Ansible's rules.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use super::raw::{RawGroup, RawInventory, RawVars, Section};
use super::{address, range};
use super::{Group as BuiltGroup, Host, Origins, SecretVars, Vars, SECRET_VARS};
use crate::source::SourceError;
use crate::yaml::Spanned;

const ALL: usize = 0;
const UNGROUPED: usize = 1;

/// What the file builds: the hosts (in Ansible's order for `all`), the
/// groups, and the hosts' positions in the order the file first names them.
pub type Built = (Vec<Host>, Vec<BuiltGroup>, Vec<usize>);

/// Builds the hosts, the groups and the order of first mention.
pub fn build(file: &Path, text: &str, raw: RawInventory) -> Result<Built, SourceError> {
    let mut builder = Builder {
        file,
        text,
        groups: Vec::new(),
        group_ids: HashMap::new(),
        hosts: Vec::new(),
        host_ids: HashMap::new(),
    };
    builder.group("all");
    builder.group("ungrouped");
    builder.groups[ALL].children.push(UNGROUPED);
    builder.groups[UNGROUPED].parents.push(ALL);

    for (name, group) in raw.map(|entries| entries.0).unwrap_or_default() {
        let id = builder.group(&name.value);
        builder.visit(id, group.unwrap_or_default())?;
    }
    builder.reconcile();
    Ok(builder.finish())
}

struct Group {
    name: String,
    parents: Vec<usize>,
    children: Vec<usize>,
    /// Hosts listed in the group itself, in the order listed.
    hosts: Vec<usize>,
    vars: Vars,
    origins: Origins,
    secret_vars: SecretVars,
    /// `ansible_group_priority`, which Ansible takes out of the vars.
    priority: i64,
}

struct HostEntry {
    name: String,
    name_at: crate::yaml::Pos,
    vars: Vars,
    origins: Origins,
    secret_vars: SecretVars,
    /// Groups that list the host directly.
    groups: Vec<usize>,
    /// Listed in `ungrouped` and in another group, so taken out of it.
    left_ungrouped: bool,
}

struct Builder<'a> {
    file: &'a Path,
    text: &'a str,
    groups: Vec<Group>,
    group_ids: HashMap<String, usize>,
    hosts: Vec<HostEntry>,
    host_ids: HashMap<String, usize>,
}

impl Builder<'_> {
    /// The group called `name`, created on first mention.
    fn group(&mut self, name: &str) -> usize {
        if let Some(&id) = self.group_ids.get(name) {
            return id;
        }
        let id = self.groups.len();
        self.groups.push(Group {
            name: name.to_string(),
            parents: Vec::new(),
            children: Vec::new(),
            hosts: Vec::new(),
            vars: Vars::new(),
            origins: Origins::new(),
            secret_vars: SecretVars::new(),
            priority: 1,
        });
        self.group_ids.insert(name.to_string(), id);
        id
    }

    /// Records one appearance of a group.
    fn visit(&mut self, id: usize, group: RawGroup) -> Result<(), SourceError> {
        for section in group.sections {
            match section {
                // A group written in several places merges; the later vars win.
                Section::Vars(vars) => self.add_group_vars(id, &vars)?,
                Section::Hosts(hosts) => {
                    for (key, vars) in hosts.0 {
                        self.add_hosts(id, vars, &key)?;
                    }
                }
                Section::Children(children) => {
                    for (name, child) in children.0 {
                        let child_id = self.group(&name.value);
                        self.add_child(id, child_id, &name)?;
                        self.visit(child_id, child.unwrap_or_default())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds `raw` to group `id`'s vars, taking `ansible_group_priority` out.
    fn add_group_vars(&mut self, id: usize, raw: &RawVars) -> Result<(), SourceError> {
        for (name, value) in &raw.0 {
            if name.value == PRIORITY {
                if let Some(priority) = priority(&value.value).map_err(|message| {
                    SourceError::at_offset(self.file, self.text, value.content, message)
                })? {
                    self.groups[id].priority = priority;
                }
            }
        }
        let group = &mut self.groups[id];
        add_vars(
            &mut group.vars,
            &mut group.origins,
            &mut group.secret_vars,
            raw,
        );
        group.vars.remove(PRIORITY);
        group.origins.remove(PRIORITY);
        Ok(())
    }

    /// Adds the host(s) named by `key` to `group`. A port in the key
    /// (`host:2222`) is the `ansible_port` of hosts it creates; hosts that
    /// already exist keep theirs, as in Ansible.
    fn add_hosts(
        &mut self,
        group: usize,
        vars: Option<RawVars>,
        key: &Spanned<String>,
    ) -> Result<(), SourceError> {
        let address = address::split(&key.value);
        let host_offset = address.host.as_ptr() as usize - key.value.as_ptr() as usize;
        let names = range::expand(address.host)
            .map_err(|error| self.error_at(key, host_offset + error.offset, error.message))?;
        let port = address.port.and_then(port_value);
        for name in names {
            let id = match self.host_ids.get(&name) {
                Some(&id) => id,
                None => {
                    let mut host = HostEntry {
                        name: name.clone(),
                        name_at: key.at,
                        vars: Vars::new(),
                        origins: Origins::new(),
                        secret_vars: SecretVars::new(),
                        groups: Vec::new(),
                        left_ungrouped: false,
                    };
                    if let Some(port) = &port {
                        host.vars.insert(PORT.to_string(), port.clone());
                        host.origins.insert(PORT.to_string(), key.at);
                    }
                    self.hosts.push(host);
                    self.host_ids.insert(name.clone(), self.hosts.len() - 1);
                    self.hosts.len() - 1
                }
            };
            if let Some(vars) = &vars {
                // Ansible sets a variable on the group of that name when
                // there is one, before looking for the host.
                match self.group_ids.get(&name) {
                    Some(&same_name) => self.add_group_vars(same_name, vars)?,
                    None => {
                        let host = &mut self.hosts[id];
                        add_vars(
                            &mut host.vars,
                            &mut host.origins,
                            &mut host.secret_vars,
                            vars,
                        );
                    }
                }
            }
            let host = &mut self.hosts[id];
            if !host.groups.contains(&group) {
                host.groups.push(group);
                self.groups[group].hosts.push(id);
            }
        }
        Ok(())
    }

    /// Makes `child` a child of `parent`, refusing cycles (Ansible does too:
    /// precedence by depth means nothing in a loop).
    fn add_child(
        &mut self,
        parent: usize,
        child: usize,
        key: &Spanned<String>,
    ) -> Result<(), SourceError> {
        if child == parent || child == ALL || self.reaches(child, parent) {
            let (child_name, parent_name) = (&self.groups[child].name, &self.groups[parent].name);
            let message = if child == parent {
                format!("group `{child_name}` cannot be a child of itself")
            } else {
                format!("group `{child_name}` cannot be a child of `{parent_name}`, which is already inside it")
            };
            return Err(self.error_at(key, 0, message));
        }
        if !self.groups[parent].children.contains(&child) {
            self.groups[parent].children.push(child);
            self.groups[child].parents.push(parent);
        }
        Ok(())
    }

    /// Whether `to` is `from` or one of its descendants.
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = vec![false; self.groups.len()];
        let mut stack = vec![from];
        while let Some(id) = stack.pop() {
            if id == to {
                return true;
            }
            if !std::mem::replace(&mut seen[id], true) {
                stack.extend(&self.groups[id].children);
            }
        }
        false
    }

    /// An error `offset` bytes into the text of `key`.
    fn error_at(&self, key: &Spanned<String>, offset: usize, message: String) -> SourceError {
        SourceError::at_offset(self.file, self.text, key.content + offset, message)
    }

    /// Ansible's reconciliation once the file is read: groups without a
    /// parent become children of `all` (in order of first mention, after
    /// those written under `all`); a host listed in `ungrouped` leaves it
    /// when it has another group; a host in no group but `all` joins it.
    fn reconcile(&mut self) {
        for id in 0..self.groups.len() {
            if id != ALL && self.groups[id].parents.is_empty() {
                self.groups[ALL].children.push(id);
                self.groups[id].parents.push(ALL);
            }
        }
        for id in 0..self.hosts.len() {
            let member = self.closure(&self.hosts[id].groups);
            let others = (0..member.len()).any(|g| member[g] && g != ALL && g != UNGROUPED);
            if member[UNGROUPED] && others {
                if self.hosts[id].groups.contains(&UNGROUPED) {
                    self.hosts[id].groups.retain(|&g| g != UNGROUPED);
                    self.groups[UNGROUPED].hosts.retain(|&h| h != id);
                    self.hosts[id].left_ungrouped = true;
                }
            } else if !others && !member[UNGROUPED] {
                self.hosts[id].groups.push(UNGROUPED);
                self.groups[UNGROUPED].hosts.push(id);
            }
        }
    }

    /// `groups` and their ancestors, `all` always.
    fn closure(&self, groups: &[usize]) -> Vec<bool> {
        let mut member = vec![false; self.groups.len()];
        let mut stack = groups.to_vec();
        stack.push(ALL);
        while let Some(id) = stack.pop() {
            if !std::mem::replace(&mut member[id], true) {
                stack.extend(&self.groups[id].parents);
            }
        }
        member
    }

    fn finish(self) -> Built {
        let depths = self.depths();
        let hosts: Vec<Host> = self
            .hosts
            .iter()
            .map(|host| {
                let mut groups = self.memberships(host);
                groups.sort_by(|&a, &b| {
                    let key = |g: usize| (depths[g], self.groups[g].priority, &self.groups[g].name);
                    key(a).cmp(&key(b))
                });
                let mut vars = Vars::new();
                let mut origins = Origins::new();
                let mut secret_vars = SecretVars::new();
                for &id in &groups {
                    vars.extend(self.groups[id].vars.clone());
                    origins.extend(self.groups[id].origins.clone());
                    secret_vars.extend(self.groups[id].secret_vars.iter().cloned());
                }
                vars.extend(host.vars.clone());
                origins.extend(host.origins.clone());
                secret_vars.extend(host.secret_vars.iter().cloned());
                Host {
                    name: host.name.clone(),
                    name_at: host.name_at,
                    vars,
                    origins,
                    secret_vars,
                    groups: groups
                        .iter()
                        .map(|&id| self.groups[id].name.clone())
                        .collect(),
                }
            })
            .collect();
        let groups: Vec<BuiltGroup> = self
            .groups
            .into_iter()
            .map(|g| BuiltGroup {
                name: g.name,
                hosts: g.hosts,
                children: g.children,
            })
            .collect();
        in_ansible_order(hosts, groups)
    }

    /// Each group's depth: the longest path to it from `all`, as Ansible
    /// counts it (the graph has no cycles, so a topological walk finds it).
    fn depths(&self) -> Vec<usize> {
        let mut depths = vec![0; self.groups.len()];
        let mut waiting: Vec<usize> = self.groups.iter().map(|g| g.parents.len()).collect();
        let mut ready: VecDeque<usize> = (0..self.groups.len())
            .filter(|&id| waiting[id] == 0)
            .collect();
        while let Some(id) = ready.pop_front() {
            for &child in &self.groups[id].children {
                depths[child] = depths[child].max(depths[id] + 1);
                waiting[child] -= 1;
                if waiting[child] == 0 {
                    ready.push_back(child);
                }
            }
        }
        depths
    }

    /// Every group `host` is in: those listing it and their ancestors, `all`
    /// always; `ungrouped` not when the host was taken out of it, even under
    /// a child of `ungrouped` (Ansible drops the membership, not the path).
    fn memberships(&self, host: &HostEntry) -> Vec<usize> {
        let mut member = self.closure(&host.groups);
        if host.left_ungrouped {
            member[UNGROUPED] = false;
        }
        (0..member.len()).filter(|&id| member[id]).collect()
    }
}

/// Orders the hosts as Ansible lists `all` (its own hosts, then its
/// children's, level by level), renumbering the groups' host lists; the
/// new positions in the order the hosts were first named come with them.
fn in_ansible_order(hosts: Vec<Host>, mut groups: Vec<BuiltGroup>) -> Built {
    let mut order = super::hosts_in_order(&groups, ALL, hosts.len());
    let mut reached = vec![false; hosts.len()];
    for &id in &order {
        reached[id] = true;
    }
    order.extend((0..hosts.len()).filter(|&id| !reached[id]));
    let mut new_id = vec![0; hosts.len()];
    for (position, &old) in order.iter().enumerate() {
        new_id[old] = position;
    }
    for group in &mut groups {
        for host in &mut group.hosts {
            *host = new_id[*host];
        }
    }
    let mut slots: Vec<Option<Host>> = hosts.into_iter().map(Some).collect();
    let hosts = order.iter().filter_map(|&old| slots[old].take()).collect();
    (hosts, groups, new_id)
}

/// Adds `raw` to `vars`, remembering where each value is written. Every
/// `herd_secret_vars` is kept, not only the last: a name declared secret
/// anywhere stays secret.
fn add_vars(vars: &mut Vars, origins: &mut Origins, secret_vars: &mut SecretVars, raw: &RawVars) {
    for (name, value) in &raw.0 {
        if name.value == SECRET_VARS {
            secret_vars.push((value.value.clone(), value.at));
        }
        vars.insert(name.value.clone(), value.value.clone());
        origins.insert(name.value.clone(), value.at);
    }
}

const PRIORITY: &str = "ansible_group_priority";
const PORT: &str = "ansible_port";

/// `ansible_group_priority` as Ansible's `int(value)` reads it: among groups
/// of the same depth, a higher priority is applied later (wins); the default
/// is 1. Nothing (null), lists and mappings leave the priority as it was;
/// text that is no whole number is an error, as in Ansible.
fn priority(value: &serde_json::Value) -> Result<Option<i64>, String> {
    use serde_json::Value;
    let bad = || format!("ansible_group_priority must be a whole number, not {value}");
    match value {
        Value::Bool(b) => Ok(Some(i64::from(*b))),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(n), _) => Ok(Some(n)),
            (None, Some(f)) if f.is_finite() && f.abs() < 9.2e18 => Ok(Some(f.trunc() as i64)),
            _ => Err(bad()),
        },
        Value::String(text) => {
            let text = text.trim();
            let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
            let underscores_ok =
                !digits.starts_with('_') && !digits.ends_with('_') && !digits.contains("__");
            let cleaned = text.replace('_', "");
            match cleaned.parse::<i64>() {
                Ok(n) if underscores_ok => Ok(Some(n)),
                _ => Err(bad()),
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => Ok(None),
    }
}

/// A port from a `host:port` key, as Ansible's `int(port)` makes it; port 0
/// sets none, as in Ansible.
fn port_value(digits: &str) -> Option<serde_json::Value> {
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return None;
    }
    Some(match trimmed.parse::<u64>() {
        Ok(port) => port.into(),
        Err(_) => trimmed.to_string().into(),
    })
}
