//! From the file as written to hosts: the group graph, group depths, and each
//! host's groups and merged vars, following Ansible's rules.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use super::range;
use super::raw::{RawGroup, RawInventory, RawVars, Section};
use super::{Group as BuiltGroup, Host, Origins, SecretVars, Vars, SECRET_VARS};
use crate::source::SourceError;
use crate::yaml::Spanned;

const ALL: usize = 0;
const UNGROUPED: usize = 1;

/// Builds the hosts (declaration order) and the groups.
pub fn build(
    file: &Path,
    text: &str,
    raw: RawInventory,
) -> Result<(Vec<Host>, Vec<BuiltGroup>), SourceError> {
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
        // Top-level groups other than `all` are its children.
        if id != ALL {
            builder.add_child(ALL, id, &name)?;
        }
        builder.visit(id, group.unwrap_or_default())?;
    }
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
}

struct HostEntry {
    name: String,
    name_at: crate::yaml::Pos,
    vars: Vars,
    origins: Origins,
    secret_vars: SecretVars,
    /// Groups that list the host directly.
    groups: Vec<usize>,
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
        });
        self.group_ids.insert(name.to_string(), id);
        id
    }

    /// Records one appearance of a group.
    fn visit(&mut self, id: usize, group: RawGroup) -> Result<(), SourceError> {
        for section in group.sections {
            match section {
                // A group written in several places merges; the later vars win.
                Section::Vars(vars) => {
                    let group = &mut self.groups[id];
                    add_vars(
                        &mut group.vars,
                        &mut group.origins,
                        &mut group.secret_vars,
                        &vars,
                    );
                }
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

    /// Adds the host(s) named by `key` to `group`.
    fn add_hosts(
        &mut self,
        group: usize,
        vars: Option<RawVars>,
        key: &Spanned<String>,
    ) -> Result<(), SourceError> {
        let names = range::expand(&key.value)
            .map_err(|error| self.error_at(key, error.offset, error.message))?;
        for name in names {
            let id = match self.host_ids.get(&name) {
                Some(&id) => id,
                None => {
                    self.hosts.push(HostEntry {
                        name: name.clone(),
                        name_at: key.at,
                        vars: Vars::new(),
                        origins: Origins::new(),
                        secret_vars: SecretVars::new(),
                        groups: Vec::new(),
                    });
                    self.host_ids.insert(name, self.hosts.len() - 1);
                    self.hosts.len() - 1
                }
            };
            let host = &mut self.hosts[id];
            if let Some(vars) = &vars {
                add_vars(
                    &mut host.vars,
                    &mut host.origins,
                    &mut host.secret_vars,
                    vars,
                );
            }
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
        if child == parent || self.reaches(child, parent) {
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

    fn finish(mut self) -> (Vec<Host>, Vec<BuiltGroup>) {
        let depths = self.depths();
        let ungrouped: Vec<usize> = (0..self.hosts.len())
            .filter(|&id| self.hosts[id].groups.iter().all(|&g| g == ALL))
            .collect();
        for id in ungrouped {
            if !self.groups[UNGROUPED].hosts.contains(&id) {
                self.groups[UNGROUPED].hosts.push(id);
            }
        }
        let priorities: Vec<i64> = self.groups.iter().map(|g| priority(&g.vars)).collect();
        let hosts = self
            .hosts
            .iter()
            .map(|host| {
                let mut groups = self.memberships(host);
                groups.sort_by(|&a, &b| {
                    (depths[a], priorities[a], &self.groups[a].name).cmp(&(
                        depths[b],
                        priorities[b],
                        &self.groups[b].name,
                    ))
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
        let groups = self
            .groups
            .into_iter()
            .map(|g| BuiltGroup {
                name: g.name,
                hosts: g.hosts,
                children: g.children,
            })
            .collect();
        (hosts, groups)
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

    /// Every group `host` is in: those listing it, their ancestors, `all`, and
    /// `ungrouped` exactly when there is no other group.
    fn memberships(&self, host: &HostEntry) -> Vec<usize> {
        let mut member = vec![false; self.groups.len()];
        let mut stack = host.groups.clone();
        stack.push(ALL);
        while let Some(id) = stack.pop() {
            if !std::mem::replace(&mut member[id], true) {
                stack.extend(&self.groups[id].parents);
            }
        }
        let others = (0..member.len()).any(|id| member[id] && id != ALL && id != UNGROUPED);
        member[UNGROUPED] = !others;
        (0..member.len()).filter(|&id| member[id]).collect()
    }
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

/// Ansible's `ansible_group_priority`: among groups of the same depth, a
/// higher priority is applied later (wins); the default is 1.
fn priority(vars: &Vars) -> i64 {
    vars.get("ansible_group_priority")
        .and_then(|value| {
            value
                .as_i64()
                .or_else(|| value.as_str()?.trim().parse().ok())
        })
        .unwrap_or(1)
}
