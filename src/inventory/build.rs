//! From the file as written to hosts: the group graph, group depths, and each
//! host's groups and merged vars, following Ansible's rules.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use super::range;
use super::raw::{RawGroup, RawInventory, Section};
use super::{Host, Vars};
use crate::source::SourceError;
use crate::yaml;

const ALL: usize = 0;
const UNGROUPED: usize = 1;

/// Builds the hosts (declaration order) and the group names.
pub fn build(
    file: &Path,
    text: &str,
    raw: RawInventory,
) -> Result<(Vec<Host>, Vec<String>), SourceError> {
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
        let mut path = vec![name];
        let id = builder.group(&path[0]);
        // Top-level groups other than `all` are its children.
        if id != ALL {
            builder.add_child(ALL, id, &path)?;
        }
        builder.visit(id, group.unwrap_or_default(), &mut path)?;
    }
    Ok(builder.finish())
}

struct Group {
    name: String,
    parents: Vec<usize>,
    children: Vec<usize>,
    vars: Vars,
}

struct HostEntry {
    name: String,
    vars: Vars,
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
            vars: Vars::new(),
        });
        self.group_ids.insert(name.to_string(), id);
        id
    }

    /// Records one appearance of a group; `path` holds the YAML keys leading
    /// to it, to point at mistakes inside it.
    fn visit(
        &mut self,
        id: usize,
        group: RawGroup,
        path: &mut Vec<String>,
    ) -> Result<(), SourceError> {
        for section in group.sections {
            match section {
                // A group written in several places merges; the later vars win.
                Section::Vars(vars) => self.groups[id].vars.extend(vars),
                Section::Hosts(hosts) => {
                    for (key, vars) in hosts.0 {
                        path.extend(["hosts".to_string(), key]);
                        self.add_hosts(id, vars.unwrap_or_default(), path)?;
                        path.truncate(path.len() - 2);
                    }
                }
                Section::Children(children) => {
                    for (name, child) in children.0 {
                        let child_id = self.group(&name);
                        path.extend(["children".to_string(), name]);
                        self.add_child(id, child_id, path)?;
                        self.visit(child_id, child.unwrap_or_default(), path)?;
                        path.truncate(path.len() - 2);
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds the host(s) named by the last key of `path` to `group`.
    fn add_hosts(&mut self, group: usize, vars: Vars, path: &[String]) -> Result<(), SourceError> {
        let key = &path[path.len() - 1];
        let names =
            range::expand(key).map_err(|error| self.error_at(path, error.offset, error.message))?;
        for name in names {
            let id = match self.host_ids.get(&name) {
                Some(&id) => id,
                None => {
                    self.hosts.push(HostEntry {
                        name: name.clone(),
                        vars: Vars::new(),
                        groups: Vec::new(),
                    });
                    self.host_ids.insert(name, self.hosts.len() - 1);
                    self.hosts.len() - 1
                }
            };
            let host = &mut self.hosts[id];
            host.vars.extend(vars.clone());
            if !host.groups.contains(&group) {
                host.groups.push(group);
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
        path: &[String],
    ) -> Result<(), SourceError> {
        if child == parent || self.reaches(child, parent) {
            let (child_name, parent_name) = (&self.groups[child].name, &self.groups[parent].name);
            let message = if child == parent {
                format!("group `{child_name}` cannot be a child of itself")
            } else {
                format!("group `{child_name}` cannot be a child of `{parent_name}`, which is already inside it")
            };
            return Err(self.error_at(path, 0, message));
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

    /// An error at the key reached by following `path` through the file,
    /// `offset` bytes into that key.
    fn error_at(&self, path: &[String], offset: usize, message: String) -> SourceError {
        let text = self.text;
        let mut at = 0;
        for (i, key) in path.iter().enumerate() {
            let from = if i == 0 { 0 } else { at + 1 };
            at = yaml::locate_key(text, key, from)
                .or_else(|| yaml::locate(text, key, from))
                .unwrap_or(at);
        }
        let key = path.last().map_or("", String::as_str);
        let rest = &text[at..];
        if rest.starts_with(key) {
            at += offset;
        } else if rest.starts_with(['"', '\'']) && rest[1..].starts_with(key) {
            at += 1 + offset;
        }
        SourceError::at_offset(self.file, text, at, message)
    }

    fn finish(self) -> (Vec<Host>, Vec<String>) {
        let depths = self.depths();
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
                for &id in &groups {
                    vars.extend(self.groups[id].vars.clone());
                }
                vars.extend(host.vars.clone());
                Host {
                    name: host.name.clone(),
                    vars,
                    groups: groups
                        .iter()
                        .map(|&id| self.groups[id].name.clone())
                        .collect(),
                }
            })
            .collect();
        let names = self.groups.into_iter().map(|g| g.name).collect();
        (hosts, names)
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
