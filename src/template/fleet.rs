//! What a template knows besides its host's own variables, as Ansible's
//! magic variables: `group_names`, `groups`, `hostvars`,
//! `inventory_hostname_short`, `ansible_play_hosts` (and `_all`) and
//! `ansible_play_batch`.
//!
//! Built once per run and shared by every render: the lists are minijinja
//! values behind one `Arc` each, and `hostvars` looks a host up only when a
//! template names it, so a thousand hosts do not each carry the fleet.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Object, Value};

use crate::inventory::Vars;

/// The names herd sets for every host, besides `inventory_hostname`.
pub const MAGIC_VARS: &[&str] = &[
    "group_names",
    "groups",
    "hostvars",
    "inventory_hostname_short",
    "ansible_play_hosts",
    "ansible_play_hosts_all",
    "ansible_play_batch",
];

/// The run's groups, hosts, batches and (once the plan has them) every
/// host's variables.
#[derive(Debug, Default, Clone)]
pub struct Fleet {
    /// Group name -> its hosts, in Ansible's order.
    groups: Option<Value>,
    /// Host name -> its groups (sorted, without `all`).
    group_names: HashMap<String, Value>,
    /// The run's hosts, in order.
    play_hosts: Option<Value>,
    /// Host name -> index in `batches`.
    batch_of: HashMap<String, usize>,
    batches: Vec<Value>,
    /// `hostvars`, with real values and as herd shows them.
    hostvars: Option<(Value, Value)>,
}

impl Fleet {
    /// The inventory's groups: `groups` maps each group (`all` and
    /// `ungrouped` included) to its hosts in Ansible's order; a host's
    /// `group_names` are the groups it is in, sorted, `all` left out.
    pub fn with_groups(groups: Vec<(String, Vec<String>)>) -> Fleet {
        let mut names: HashMap<String, Vec<String>> = HashMap::new();
        for (group, hosts) in &groups {
            if group == "all" {
                continue;
            }
            for host in hosts {
                names.entry(host.clone()).or_default().push(group.clone());
            }
        }
        let group_names = names
            .into_iter()
            .map(|(host, mut groups)| {
                groups.sort();
                groups.dedup();
                (host, Value::from(groups))
            })
            .collect();
        let map = Value::from_object(Ordered(
            groups
                .into_iter()
                .map(|(name, hosts)| (name, Value::from(hosts)))
                .collect(),
        ));
        Fleet {
            groups: Some(map),
            group_names,
            ..Fleet::default()
        }
    }

    /// The run's hosts and its batches (each a list of host names).
    pub fn set_play(&mut self, hosts: Vec<String>, batches: Vec<Vec<String>>) {
        self.play_hosts = Some(Value::from(hosts));
        self.batch_of.clear();
        self.batches.clear();
        for (index, batch) in batches.into_iter().enumerate() {
            for host in &batch {
                self.batch_of.insert(host.clone(), index);
            }
            self.batches.push(Value::from(batch));
        }
    }

    /// Every host's variables, real and as herd shows them (secrets as
    /// `***`), shared, not copied.
    pub fn set_hostvars(&mut self, hosts: Vec<HostEntry>) {
        let index = hosts
            .iter()
            .enumerate()
            .map(|(at, host)| (host.name.clone(), at))
            .collect();
        let table = Arc::new(HostTable { index, hosts });
        let view = |shown| {
            Value::from_object(HostVars {
                table: table.clone(),
                shown,
            })
        };
        self.hostvars = Some((view(false), view(true)));
    }

    /// The magic variables of the host `name`, for one render; each value
    /// is a shared handle, not a copy.
    pub(super) fn vars_of(&self, name: &str, shown: bool) -> Vec<(&'static str, Value)> {
        let mut vars = vec![("inventory_hostname_short", Value::from(short(name)))];
        if let Some(groups) = &self.groups {
            vars.push(("groups", groups.clone()));
            let names = self.group_names.get(name).cloned();
            vars.push((
                "group_names",
                names.unwrap_or_else(|| Value::from(Vec::<Value>::new())),
            ));
        }
        if let Some(hosts) = &self.play_hosts {
            vars.push(("ansible_play_hosts", hosts.clone()));
            vars.push(("ansible_play_hosts_all", hosts.clone()));
        }
        if let Some(batch) = self.batch_of.get(name).and_then(|&i| self.batches.get(i)) {
            vars.push(("ansible_play_batch", batch.clone()));
        }
        if let Some((real, shown_view)) = &self.hostvars {
            let view = if shown { shown_view } else { real };
            vars.push(("hostvars", view.clone()));
        }
        vars
    }

    /// Whether a magic variable is set for templates now.
    pub(super) fn knows(&self, name: &str) -> bool {
        match name {
            "inventory_hostname_short" => true,
            "groups" | "group_names" => self.groups.is_some(),
            "ansible_play_hosts" | "ansible_play_hosts_all" | "ansible_play_batch" => {
                self.play_hosts.is_some()
            }
            "hostvars" => self.hostvars.is_some(),
            _ => false,
        }
    }
}

/// A host name up to its first dot.
pub fn short(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// A mapping that keeps its keys in the order given (`groups`: `all`,
/// `ungrouped`, then the inventory's order).
#[derive(Debug)]
struct Ordered(Vec<(String, Value)>);

impl Object for Ordered {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.0
                .iter()
                .map(|(name, _)| Value::from(name.as_str()))
                .collect(),
        )
    }
}

/// One host in `hostvars`.
#[derive(Debug)]
pub struct HostEntry {
    name: String,
    vars: Arc<Vars>,
    /// `vars` as herd shows them, secrets as `***`.
    shown: Arc<Vars>,
    /// Its groups, sorted, without `all`.
    group_names: Vec<String>,
    /// `vars` and `shown` as templates read them, made at the first read:
    /// a loop over every host's variables converts each host once.
    converted: [OnceLock<Value>; 2],
}

impl HostEntry {
    pub fn new(name: String, vars: Arc<Vars>, shown: Arc<Vars>, group_names: Vec<String>) -> Self {
        HostEntry {
            name,
            vars,
            shown,
            group_names,
            converted: [OnceLock::new(), OnceLock::new()],
        }
    }

    fn value(&self, shown: bool) -> Value {
        self.converted[usize::from(shown)]
            .get_or_init(|| {
                let vars = if shown { &self.shown } else { &self.vars };
                let mut map: std::collections::BTreeMap<Value, Value> = vars
                    .iter()
                    .map(|(name, value)| (Value::from(name.as_str()), Value::from_serialize(value)))
                    .collect();
                map.insert(
                    Value::from("inventory_hostname_short"),
                    Value::from(short(&self.name)),
                );
                map.insert(
                    Value::from("group_names"),
                    Value::from(self.group_names.clone()),
                );
                Value::from(map)
            })
            .clone()
    }
}

#[derive(Debug)]
struct HostTable {
    index: HashMap<String, usize>,
    hosts: Vec<HostEntry>,
}

/// `hostvars`: a host's variables, converted when a template first asks
/// for them. The display view gives each host's shown variables, so a
/// secret of another host is `***` in what herd prints.
#[derive(Debug)]
struct HostVars {
    table: Arc<HostTable>,
    shown: bool,
}

impl Object for HostVars {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let host = &self.table.hosts[*self.table.index.get(key.as_str()?)?];
        Some(host.value(self.shown))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.table
                .hosts
                .iter()
                .map(|host| Value::from(host.name.as_str()))
                .collect(),
        )
    }
}
