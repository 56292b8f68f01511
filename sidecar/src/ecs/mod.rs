//! What ECS tells the log router about its task, and who sent a record.
//!
//! Records from Docker's fluentd driver carry Docker's container name
//! (`/ecs-orders-7-envoy-9a8b…`), the full container id and a tag
//! `<container>-firelens-<task id>`; nothing else (shared/firelens.md §1.2).
//! The task-definition name of a container is the tag's part before
//! `-firelens-`, else the task metadata's `Name` for the record's id or
//! Docker name, else Docker's name without its `/`. Task metadata v4
//! (`${ECS_CONTAINER_METADATA_URI_V4}/task`) gives the cluster, task and
//! task definition, which Fluent Bit's `record_modifier` would add.

mod http;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sluice_firelens::Record;

/// The variable ECS sets in every container (agent ≥ 1.39, Fargate 1.4).
pub const METADATA_VARIABLE: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// At most this long at start for the metadata endpoint; input waits.
const METADATA_PATIENCE: Duration = Duration::from_secs(3);

/// The kernel's hostname (on ECS, the task's): the forward handshake's
/// name, and a FireLens configuration's `${HOSTNAME}` when the
/// environment lacks it. `None` when it cannot be read or is empty.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The task, as `${uri}/task` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMetadata {
    /// The cluster's name (Fargate gives an ARN; this is its last part).
    pub cluster: String,
    pub task_arn: String,
    /// The ARN's last part.
    pub task_id: String,
    /// `family:revision`.
    pub task_definition: String,
    pub family: String,
    pub revision: String,
    /// `EC2`, `FARGATE` or `EXTERNAL`, when given.
    pub launch_type: Option<String>,
    pub availability_zone: Option<String>,
    pub containers: Vec<ContainerMetadata>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerMetadata {
    /// The task-definition name.
    pub name: String,
    pub docker_id: String,
    /// Docker's name, without a `/`.
    pub docker_name: String,
}

/// The v4 task answer's fields Sluice reads (shared/firelens.md §4).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskAnswer {
    cluster: String,
    #[serde(rename = "TaskARN")]
    task_arn: String,
    family: String,
    revision: String,
    #[serde(default)]
    launch_type: Option<String>,
    #[serde(default)]
    availability_zone: Option<String>,
    #[serde(default)]
    containers: Vec<ContainerAnswer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerAnswer {
    #[serde(default)]
    docker_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    docker_name: String,
}

/// The last `/`-separated part: a name from an ARN, an id from a task ARN.
pub fn last_part(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl TaskMetadata {
    pub fn parse(body: &str) -> Result<TaskMetadata, String> {
        let answer: TaskAnswer =
            serde_json::from_str(body).map_err(|e| format!("not task metadata: {e}"))?;
        Ok(TaskMetadata {
            cluster: last_part(&answer.cluster).to_string(),
            task_id: last_part(&answer.task_arn).to_string(),
            task_arn: answer.task_arn,
            task_definition: format!("{}:{}", answer.family, answer.revision),
            family: answer.family,
            revision: answer.revision,
            launch_type: answer.launch_type.filter(|t| !t.is_empty()),
            availability_zone: answer.availability_zone.filter(|z| !z.is_empty()),
            containers: answer
                .containers
                .into_iter()
                .map(|c| ContainerMetadata {
                    name: c.name,
                    docker_id: c.docker_id,
                    docker_name: c.docker_name.trim_start_matches('/').to_string(),
                })
                .collect(),
        })
    }

    /// The region in the task's ARN (`arn:aws:ecs:REGION:ACCOUNT:task/...`).
    pub fn region(&self) -> Option<&str> {
        let mut parts = self.task_arn.split(':');
        let fields = (parts.next(), parts.next(), parts.next(), parts.next());
        match fields {
            (Some("arn"), Some(_), Some("ecs"), Some(region)) if !region.is_empty() => Some(region),
            _ => None,
        }
    }

    /// The variables aws-for-fluent-bit's init image exports from the task
    /// metadata before it starts Fluent Bit (`init/fluent_bit_init_process.go`),
    /// which configurations use as `${ECS_TASK_ID}` and the like. A value
    /// the metadata does not give is left out.
    pub fn init_variables(&self) -> Vec<(&'static str, String)> {
        let mut vars = Vec::new();
        if let Some(region) = self.region() {
            vars.push(("AWS_REGION", region.to_string()));
        }
        if let Some(zone) = &self.availability_zone {
            vars.push(("AWS_AVAILABILITY_ZONE", zone.clone()));
        }
        vars.extend([
            ("ECS_CLUSTER", self.cluster.clone()),
            ("ECS_TASK_ARN", self.task_arn.clone()),
            ("ECS_TASK_ID", self.task_id.clone()),
            ("ECS_FAMILY", self.family.clone()),
        ]);
        if let Some(launch_type) = &self.launch_type {
            vars.push(("ECS_LAUNCH_TYPE", launch_type.clone()));
        }
        vars.extend([
            ("ECS_REVISION", self.revision.clone()),
            ("ECS_TASK_DEFINITION", self.task_definition.clone()),
        ]);
        vars
    }

    /// Reads `${uri}/task`, retrying for at most a few seconds; `None`
    /// (logged once) when the endpoint is missing, slow or failing.
    pub fn fetch(uri: &str) -> Option<TaskMetadata> {
        let url = format!("{}/task", uri.trim_end_matches('/'));
        let deadline = Instant::now() + METADATA_PATIENCE;
        let mut wait = Duration::from_millis(100);
        let mut last_error;
        loop {
            let attempt_deadline = deadline.min(Instant::now() + Duration::from_secs(1));
            match http::get(&url, attempt_deadline).and_then(|body| TaskMetadata::parse(&body)) {
                Ok(task) => {
                    tracing::info!(cluster = %task.cluster, task_arn = %task.task_arn, task_definition = %task.task_definition, containers = task.containers.len(), "task metadata read");
                    return Some(task);
                }
                Err(e) => last_error = e,
            }
            if Instant::now() + wait >= deadline {
                break;
            }
            std::thread::sleep(wait);
            wait *= 2;
        }
        tracing::warn!(%url, error = %last_error, "cannot read the task metadata; running without it (cluster, task and task-definition names come from the records and tags only)");
        None
    }

    /// From the environment's `ECS_CONTAINER_METADATA_URI_V4`, when set.
    pub fn from_environment() -> Option<TaskMetadata> {
        let uri = std::env::var(METADATA_VARIABLE).ok()?;
        TaskMetadata::fetch(&uri)
    }
}

/// Who sent a record, and the ECS keys a record without them gets.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    task: Option<TaskMetadata>,
    /// The task's `ecs_cluster`, `ecs_task_arn` and `ecs_task_definition`,
    /// shared by the records they are added to (two allocations per key
    /// per record otherwise).
    task_keys: Vec<(Arc<str>, Arc<str>)>,
}

impl Identity {
    pub fn new(task: Option<TaskMetadata>) -> Identity {
        let task_keys = task.as_ref().map_or_else(Vec::new, |t| {
            [
                ("ecs_cluster", &t.cluster),
                ("ecs_task_arn", &t.task_arn),
                ("ecs_task_definition", &t.task_definition),
            ]
            .map(|(key, value)| (Arc::from(key), Arc::from(value.as_str())))
            .to_vec()
        });
        Identity { task, task_keys }
    }

    /// The task, when its metadata endpoint answered.
    pub fn task(&self) -> Option<&TaskMetadata> {
        self.task.as_ref()
    }

    /// The container's task-definition name (see the module's doc), from
    /// its tag already split (`None`: not a FireLens tag; see
    /// [`split_firelens_tag`] and [`LastTag`]) and its record.
    pub fn container_name<'a>(
        &'a self,
        firelens: Option<(&'a str, &'a str)>,
        record: &'a Record,
    ) -> Cow<'a, str> {
        if let Some((name, _)) = firelens {
            if !name.is_empty() {
                return Cow::Borrowed(name);
            }
        }
        let field = |key: &str| record.get_str(key);
        let docker_name = field("container_name").map(|n| n.trim_start_matches('/'));
        if let Some(task) = &self.task {
            let id = field("container_id");
            let known = task.containers.iter().find(|c| {
                (id.is_some_and(|id| !c.docker_id.is_empty() && c.docker_id == id))
                    || docker_name.is_some_and(|n| !c.docker_name.is_empty() && c.docker_name == n)
            });
            if let Some(c) = known {
                return Cow::Borrowed(&c.name);
            }
        }
        match docker_name {
            Some(n) => Cow::Borrowed(n),
            None => Cow::Borrowed("unknown"),
        }
    }

    /// Adds `ecs_cluster`, `ecs_task_arn` and `ecs_task_definition` to a
    /// record that lacks them, as FireLens' `record_modifier` would.
    pub fn add_task_keys(&self, record: &mut Record) {
        for (key, value) in &self.task_keys {
            record.insert_shared_if_absent(key, value);
        }
    }

    /// The task id: metadata, else the FireLens tag's part after
    /// `-firelens-` (`firelens`: the tag already split, as
    /// [`Identity::container_name`] takes it).
    pub fn task_id<'a>(&'a self, firelens: Option<(&'a str, &'a str)>) -> Option<&'a str> {
        match &self.task {
            Some(t) => Some(&t.task_id),
            None => firelens.map(|(_, id)| id),
        }
    }
}

/// A FireLens tag, `<container>-firelens-<task id>`, split at its last
/// `-firelens-`: a task id never holds one, a container name may. (Runs
/// for every event: each `-` from the end is tried as the separator's
/// last byte, and the first `-` found, the one before the task id, is
/// usually it.)
pub fn split_firelens_tag(tag: &str) -> Option<(&str, &str)> {
    let bytes = tag.as_bytes();
    for last in memchr::memrchr_iter(b'-', bytes) {
        let start = (last + 1).checked_sub(FIRELENS_SEPARATOR.len())?;
        if &bytes[start..=last] == FIRELENS_SEPARATOR.as_bytes() {
            // The separator is ASCII, so both ends are char boundaries.
            return Some((&tag[..start], &tag[last + 1..]));
        }
    }
    None
}

const FIRELENS_SEPARATOR: &str = "-firelens-";

/// [`split_firelens_tag`] of the last tag asked about. The events of a
/// frame share one tag (one `Arc`), so the tag is searched once per frame
/// rather than for every event (about 150 instructions each time).
#[derive(Debug, Default)]
pub struct LastTag {
    /// The tag, held so that its address is not another tag's later, and
    /// where it splits.
    last: Option<(Arc<str>, Option<SplitAt>)>,
}

/// Where a FireLens tag's container name ends and its task id starts.
#[derive(Clone, Copy, Debug)]
struct SplitAt {
    name_end: usize,
    id_start: usize,
}

impl LastTag {
    /// `tag`'s container name and task id, when it is a FireLens tag.
    pub fn split<'t>(&mut self, tag: &'t Arc<str>) -> Option<(&'t str, &'t str)> {
        let parts = match &self.last {
            Some((last, parts)) if Arc::ptr_eq(last, tag) => *parts,
            _ => {
                let parts = split_firelens_tag(tag).map(|(name, id)| SplitAt {
                    name_end: name.len(),
                    id_start: tag.len() - id.len(),
                });
                self.last = Some((tag.clone(), parts));
                parts
            }
        };
        parts.map(|at| (&tag[..at.name_end], &tag[at.id_start..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The docs' Fargate answer, shortened: the cluster is an ARN, Docker's
    /// name is the task-definition name.
    const FARGATE: &str = r#"{
        "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
        "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/e9028f8d5d8e4f258373e7b93ce9a3c3",
        "Family": "curltest", "Revision": "3", "LaunchType": "FARGATE", "AvailabilityZone": "us-west-2d",
        "Containers": [{"DockerId": "e9028f8d5d8e4f258373e7b93ce9a3c3-3155516364", "Name": "curl", "DockerName": "curl", "Labels": {}}]
    }"#;

    #[test]
    fn metadata_from_fargate() {
        let t = TaskMetadata::parse(FARGATE).unwrap();
        assert_eq!(t.cluster, "default");
        assert_eq!(t.task_id, "e9028f8d5d8e4f258373e7b93ce9a3c3");
        assert_eq!(t.task_definition, "curltest:3");
        assert_eq!(
            t.containers,
            [ContainerMetadata {
                name: "curl".into(),
                docker_id: "e9028f8d5d8e4f258373e7b93ce9a3c3-3155516364".into(),
                docker_name: "curl".into()
            }]
        );
        assert!(TaskMetadata::parse("{}").is_err());
    }

    #[test]
    fn init_variables_as_aws_for_fluent_bit_s_init_exports_them() {
        let t = TaskMetadata::parse(FARGATE).unwrap();
        let vars: Vec<String> = t
            .init_variables()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            vars,
            [
                "AWS_REGION=us-west-2",
                "AWS_AVAILABILITY_ZONE=us-west-2d",
                "ECS_CLUSTER=default",
                "ECS_TASK_ARN=arn:aws:ecs:us-west-2:111122223333:task/default/e9028f8d5d8e4f258373e7b93ce9a3c3",
                "ECS_TASK_ID=e9028f8d5d8e4f258373e7b93ce9a3c3",
                "ECS_FAMILY=curltest",
                "ECS_LAUNCH_TYPE=FARGATE",
                "ECS_REVISION=3",
                "ECS_TASK_DEFINITION=curltest:3",
            ]
        );
        // What the metadata does not give is left out.
        let ec2 = r#"{"Cluster": "default", "TaskARN": "arn:aws:ecs:eu-west-1:1:task/default/abc", "Family": "f", "Revision": "1"}"#;
        let names: Vec<&str> = TaskMetadata::parse(ec2)
            .unwrap()
            .init_variables()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            names,
            [
                "AWS_REGION",
                "ECS_CLUSTER",
                "ECS_TASK_ARN",
                "ECS_TASK_ID",
                "ECS_FAMILY",
                "ECS_REVISION",
                "ECS_TASK_DEFINITION"
            ]
        );
    }

    #[test]
    fn the_region_is_the_task_arns() {
        let mut t = TaskMetadata::parse(FARGATE).unwrap();
        assert_eq!(t.region(), Some("us-west-2"));
        t.task_arn = "arn:aws-cn:ecs:cn-north-1:1:task/c/abc".into();
        assert_eq!(t.region(), Some("cn-north-1"));
        for bad in [
            "abc",
            "arn:aws:ecs::1:task/c/abc",
            "arn:aws:s3:us-east-1:1:x",
            "",
        ] {
            t.task_arn = bad.into();
            assert_eq!(t.region(), None, "{bad}");
        }
    }

    #[test]
    fn container_names() {
        let task = TaskMetadata {
            cluster: "c".into(),
            task_arn: "arn:aws:ecs:r:1:task/c/abc".into(),
            task_id: "abc".into(),
            task_definition: "orders:7".into(),
            family: "orders".into(),
            revision: "7".into(),
            launch_type: None,
            availability_zone: None,
            containers: vec![ContainerMetadata {
                name: "envoy".into(),
                docker_id: "d0c8".into(),
                docker_name: "ecs-orders-7-envoy-9a8b".into(),
            }],
        };
        let with = Identity::new(Some(task));
        let without = Identity::default();
        let record = |pairs: &[(&str, &str)]| -> Record {
            let mut r = Record::default();
            for (k, v) in pairs {
                r.insert(k, *v);
            }
            r
        };
        let docker = record(&[
            ("container_name", "/ecs-orders-7-envoy-9a8b"),
            ("container_id", "d0c8"),
        ]);
        // The tag split as the stage splits it (`LastTag`).
        let name = |identity: &Identity, tag: &str, record: &Record| {
            identity
                .container_name(split_firelens_tag(tag), record)
                .into_owned()
        };
        assert_eq!(name(&with, "app-firelens-abc", &docker), "app");
        assert_eq!(name(&with, "docker.d0c8", &docker), "envoy");
        let by_name = record(&[("container_name", "/ecs-orders-7-envoy-9a8b")]);
        assert_eq!(name(&with, "x", &by_name), "envoy");
        assert_eq!(name(&without, "x", &docker), "ecs-orders-7-envoy-9a8b");
        assert_eq!(name(&without, "x", &Record::default()), "unknown");
        let mut r = record(&[("ecs_cluster", "given")]);
        with.add_task_keys(&mut r);
        assert_eq!(r.get_str("ecs_cluster"), Some("given"));
        assert_eq!(
            r.get_str("ecs_task_arn"),
            Some("arn:aws:ecs:r:1:task/c/abc")
        );
        assert_eq!(r.get_str("ecs_task_definition"), Some("orders:7"));
        assert_eq!(with.task_id(split_firelens_tag("t")), Some("abc"));
        assert_eq!(
            without.task_id(split_firelens_tag("app-firelens-xyz")),
            Some("xyz")
        );
        // A container whose own name holds the separator.
        let tag = "log-firelens-router-firelens-5a0a7b1c";
        assert_eq!(
            name(&without, tag, &Record::default()),
            "log-firelens-router"
        );
        assert_eq!(without.task_id(split_firelens_tag(tag)), Some("5a0a7b1c"));
    }

    /// A remembered split is only ever the tag's own, however tags
    /// alternate; another `Arc` with equal text splits the same.
    #[test]
    fn a_remembered_split_is_always_the_tags_own() {
        let mut last = LastTag::default();
        let envoy: Arc<str> = "envoy-firelens-5a0a".into();
        let app: Arc<str> = "app-firelens-5a0a".into();
        let docker: Arc<str> = "docker.d0c8".into();
        let envoy_again: Arc<str> = "envoy-firelens-5a0a".into();
        for _ in 0..2 {
            assert_eq!(last.split(&envoy), Some(("envoy", "5a0a")));
            assert_eq!(last.split(&envoy), Some(("envoy", "5a0a")));
            assert_eq!(last.split(&app), Some(("app", "5a0a")));
            assert_eq!(last.split(&docker), None);
            assert_eq!(last.split(&docker), None);
            assert_eq!(last.split(&envoy_again), Some(("envoy", "5a0a")));
        }
        let with_separator: Arc<str> = "log-firelens-router-firelens-5a0a7b1c".into();
        assert_eq!(
            last.split(&with_separator),
            Some(("log-firelens-router", "5a0a7b1c"))
        );
    }

    #[test]
    fn firelens_tags_split_at_the_last_separator() {
        let cases = [
            ("envoy-firelens-5a0a7b1c", Some(("envoy", "5a0a7b1c"))),
            ("-firelens-", Some(("", ""))),
            ("a-firelens-firelens-b", Some(("a-firelens", "b"))),
            ("-firelens-firelens-", Some(("-firelens", ""))),
            ("my-app-firelens-", Some(("my-app", ""))),
            ("firelens-x", None),
            ("a-firelens", None),
            ("a-b-c", None),
            ("", None),
            ("é-firelens-é", Some(("é", "é"))),
        ];
        for (tag, want) in cases {
            assert_eq!(split_firelens_tag(tag), want, "{tag:?}");
            // The same as a plain search for the last separator.
            let plain = tag
                .rfind(FIRELENS_SEPARATOR)
                .map(|at| (&tag[..at], &tag[at + FIRELENS_SEPARATOR.len()..]));
            assert_eq!(plain, want, "{tag:?}");
        }
    }
}
