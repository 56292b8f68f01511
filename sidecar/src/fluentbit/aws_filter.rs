//! `[FILTER] aws`: EC2 instance metadata added to every record, as
//! `plugins/filter_aws/aws.c` (v5.1.1) adds it: `az` and
//! `ec2_instance_id` by default, `ec2_instance_type`, `private_ip`,
//! `vpc_id`, `ami_id`, `account_id` and `hostname` when asked.
//!
//! The values come from the instance metadata service at 169.254.169.254
//! (or the address of `AWS_EC2_METADATA_SERVICE_ENDPOINT`, the SDKs'
//! override), with an IMDSv2 session token unless `imds_version v1`. [`fetch`] asks once at start,
//! as Fluent Bit does, then beside the pipeline: what it has found is
//! added to the records that pass, and what it has not (on Fargate, or in
//! awsvpc mode, the service is out of reach) is asked again every
//! `retry_interval_s`, as Fluent Bit asks again. Records are never held
//! back waiting for it after the start.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use sluice_firelens::Record;

use super::classic::Section;
use crate::config::layer::fluent_bool;

/// One piece of instance metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ec2Field {
    Az,
    InstanceId,
    InstanceType,
    PrivateIp,
    VpcId,
    AmiId,
    AccountId,
    Hostname,
}

impl Ec2Field {
    const ALL: [Ec2Field; 8] = [
        Ec2Field::Az,
        Ec2Field::InstanceId,
        Ec2Field::InstanceType,
        Ec2Field::PrivateIp,
        Ec2Field::VpcId,
        Ec2Field::AmiId,
        Ec2Field::AccountId,
        Ec2Field::Hostname,
    ];

    /// The filter's option, which is also the key it adds, but for `az`.
    fn option(self) -> &'static str {
        match self {
            Ec2Field::Az => "az",
            Ec2Field::InstanceId => "ec2_instance_id",
            Ec2Field::InstanceType => "ec2_instance_type",
            Ec2Field::PrivateIp => "private_ip",
            Ec2Field::VpcId => "vpc_id",
            Ec2Field::AmiId => "ami_id",
            Ec2Field::AccountId => "account_id",
            Ec2Field::Hostname => "hostname",
        }
    }

    pub fn key(self) -> &'static str {
        self.option()
    }

    /// On by default (`az`, `ec2_instance_id`).
    fn default_on(self) -> bool {
        matches!(self, Ec2Field::Az | Ec2Field::InstanceId)
    }
}

/// A filter's fields and what has been found of them; a clone shares
/// what is found.
#[derive(Clone, Debug)]
pub struct AwsFilter {
    /// The fields asked for, in order.
    pub fields: Vec<Ec2Field>,
    /// How long to wait before asking again for what was not found.
    pub retry_interval: Duration,
    /// `imds_version v1`: no session token.
    pub imds_v1: bool,
    pub found: Arc<Found>,
}

/// The values found so far, shared by the filter and [`fetch`].
#[derive(Debug, Default)]
pub struct Found(RwLock<Vec<(Ec2Field, String)>>);

impl Found {
    fn set(&self, field: Ec2Field, value: String) {
        let mut found = self.0.write().unwrap_or_else(|e| e.into_inner());
        found.retain(|(f, _)| *f != field);
        found.push((field, value));
    }

    fn get(&self, field: Ec2Field) -> Option<String> {
        let found = self.0.read().unwrap_or_else(|e| e.into_inner());
        found
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.clone())
    }
}

impl AwsFilter {
    /// Reads the section's options, as Fluent Bit's config map types them.
    pub fn from_section(section: &Section, notes: &mut Vec<String>) -> Result<AwsFilter, String> {
        let mut on: Vec<(Ec2Field, bool)> =
            Ec2Field::ALL.iter().map(|f| (*f, f.default_on())).collect();
        let mut retry_interval = Duration::from_secs(300);
        let mut imds_v1 = false;
        let flag = |key: &str, value: &str| {
            fluent_bool(value)
                .ok_or_else(|| format!("[FILTER] aws {key} {value:?} is not true or false"))
        };
        for (key, value) in &section.entries {
            let lower = key.to_ascii_lowercase();
            if let Some(slot) = on.iter_mut().find(|(f, _)| f.option() == lower) {
                slot.1 = flag(key, value)?;
                continue;
            }
            match lower.as_str() {
                "name" | "match" | "match_regex" | "alias" => {}
                "imds_version" => match value.to_ascii_lowercase().as_str() {
                    "v2" => imds_v1 = false,
                    "v1" => imds_v1 = true,
                    _ => {
                        return Err(format!(
                            "[FILTER] aws imds_version {value:?} is not v1 or v2"
                        ))
                    }
                },
                "retry_interval_s" => {
                    let seconds: u64 = value.trim().parse().map_err(|_| {
                        format!(
                            "[FILTER] aws retry_interval_s {value:?} is not a number of seconds"
                        )
                    })?;
                    retry_interval = Duration::from_secs(seconds.max(1));
                }
                // A switch that is off asks for nothing.
                "tags_enabled" | "enable_entity" if !flag(key, value)? => {}
                "tags_enabled" | "tags_include" | "tags_exclude" | "enable_entity" => {
                    notes.push(format!(
                        "{}: [FILTER] aws {key} does not apply: Sluice adds the instance's metadata, not its tags or entity keys",
                        section.at
                    ));
                }
                _ => {
                    return Err(format!(
                    "[FILTER] aws has no option {key}; it takes {}, imds_version, retry_interval_s",
                    Ec2Field::ALL.map(Ec2Field::option).join(", ")
                ))
                }
            }
        }
        Ok(AwsFilter {
            fields: on
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(f, _)| f)
                .collect(),
            retry_interval,
            imds_v1,
            found: Arc::default(),
        })
    }

    /// Adds what has been found; a key the record already has is replaced
    /// (Fluent Bit appends a second one, and a JSON reader takes the
    /// last).
    pub fn apply(&self, record: &mut Record) {
        let found = self.found.0.read().unwrap_or_else(|e| e.into_inner());
        for field in &self.fields {
            if let Some((_, value)) = found.iter().find(|(f, _)| f == field) {
                record.insert(field.key(), value.as_str());
            }
        }
    }
}

/// Asks the instance metadata service for what `filter` has not found
/// yet: at start, before any record passes, for at most `first_wait` (as
/// Fluent Bit asks once when it starts), then, in a task of its own, again
/// every `retry_interval` until everything is found. Logs each field's
/// first failure.
pub async fn fetch(filter: &AwsFilter, first_wait: Duration) {
    let imds = Imds::from_environment(filter.imds_v1);
    let (fields, found, retry) = (
        filter.fields.clone(),
        filter.found.clone(),
        filter.retry_interval,
    );
    let mut logged = Vec::new();
    let first = fetch_missing(&imds, &fields, &found, &mut logged, retry);
    if let Ok(true) = tokio::time::timeout(first_wait, first).await {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(retry).await;
            if fetch_missing(&imds, &fields, &found, &mut logged, retry).await {
                return;
            }
        }
    });
}

/// One round of asking for what is missing: whether all is found.
async fn fetch_missing(
    imds: &Imds,
    fields: &[Ec2Field],
    found: &Found,
    logged: &mut Vec<Ec2Field>,
    retry: Duration,
) -> bool {
    let mut all = true;
    for &field in fields {
        if found.get(field).is_some() {
            continue;
        }
        match get(imds, field).await {
            Ok(value) => found.set(field, value),
            Err(e) => {
                all = false;
                if !logged.contains(&field) {
                    logged.push(field);
                    tracing::warn!(key = field.key(), error = %e, retry_s = retry.as_secs(), "[FILTER] aws: cannot read the instance metadata; records go on without it, and it is asked again");
                }
            }
        }
    }
    all
}

async fn get(imds: &Imds, field: Ec2Field) -> Result<String, String> {
    let meta = |name: &str| format!("/latest/meta-data/{name}");
    match field {
        Ec2Field::Az => imds.get(&meta("placement/availability-zone")).await,
        Ec2Field::InstanceId => imds.get(&meta("instance-id")).await,
        Ec2Field::InstanceType => imds.get(&meta("instance-type")).await,
        Ec2Field::PrivateIp => imds.get(&meta("local-ipv4")).await,
        Ec2Field::AmiId => imds.get(&meta("ami-id")).await,
        Ec2Field::Hostname => imds.get(&meta("hostname")).await,
        Ec2Field::VpcId => {
            let mac = imds.get(&meta("mac")).await?;
            imds.get(&meta(&format!("network/interfaces/macs/{mac}/vpc-id")))
                .await
        }
        Ec2Field::AccountId => {
            let document = imds
                .get("/latest/dynamic/instance-identity/document")
                .await?;
            account_id(&document)
        }
    }
}

/// The instance metadata service, asked as Fluent Bit's `flb_aws_imds`
/// asks it: with an IMDSv2 session token, or without one for
/// `imds_version v1`; each request over its own connection, each step
/// within [`IMDS_TIMEOUT`].
struct Imds {
    /// `host:port`: 169.254.169.254:80, or the host of
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` (the SDKs' override).
    authority: String,
    v1: bool,
}

/// Fluent Bit's `FLB_AWS_IMDS_TIMEOUT`.
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

impl Imds {
    fn from_environment(v1: bool) -> Imds {
        let authority = std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .ok()
            .and_then(|url| {
                let rest = url.strip_prefix("http://")?;
                Some(rest.split('/').next()?.to_string())
            })
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "169.254.169.254:80".to_string());
        Imds { authority, v1 }
    }

    async fn get(&self, path: &str) -> Result<String, String> {
        let mut headers = Vec::new();
        if !self.v1 {
            let token = self
                .request(
                    hyper::Method::PUT,
                    "/latest/api/token",
                    &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
                )
                .await
                .map_err(|e| format!("no IMDSv2 session token: {e}"))?;
            headers.push(("x-aws-ec2-metadata-token", token));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.request(hyper::Method::GET, path, &headers).await
    }

    /// The body of a 200 answer, trimmed.
    async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<String, String> {
        use http_body_util::{BodyExt, Empty, Limited};
        let within = |what: &'static str| move |_| format!("{what} took over {IMDS_TIMEOUT:?}");
        let stream = tokio::time::timeout(
            IMDS_TIMEOUT,
            tokio::net::TcpStream::connect(&self.authority),
        )
        .await
        .map_err(within("connecting"))?
        .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Empty::<hyper::body::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(IMDS_TIMEOUT, sender.send_request(request))
            .await
            .map_err(within("the answer"))?
            .map_err(|e| e.to_string())?;
        let status = response.status();
        // An answer is a few bytes; anything past 64 KiB is not one.
        let body = Limited::new(response.into_body(), 64 << 10);
        let body = tokio::time::timeout(IMDS_TIMEOUT, body.collect())
            .await
            .map_err(within("the answer's body"))?
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != hyper::StatusCode::OK {
            return Err(format!("{path}: {status}"));
        }
        Ok(String::from_utf8_lossy(&body).trim().to_string())
    }
}

/// `accountId` of the instance identity document.
fn account_id(document: &str) -> Result<String, String> {
    let json: serde_json::Value = serde_json::from_str(document)
        .map_err(|e| format!("the instance identity document is not JSON: {e}"))?;
    json["accountId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "the instance identity document has no accountId".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;
    use serde_json::{json, Value as Json};

    fn section(entries: &[(&str, &str)]) -> Section {
        let head = [("Name", "aws"), ("Match", "*")];
        crate::fluentbit::tests::section(SectionKind::Filter, "f.conf:1", &head, entries)
    }

    #[test]
    fn options_as_fluent_bit_reads_them() {
        let mut notes = Vec::new();
        let f = AwsFilter::from_section(&section(&[]), &mut notes).unwrap();
        assert_eq!(f.fields, [Ec2Field::Az, Ec2Field::InstanceId]);
        assert_eq!(f.retry_interval, Duration::from_secs(300));
        let f = AwsFilter::from_section(
            &section(&[
                ("imds_version", "v1"),
                ("az", "false"),
                ("hostname", "On"),
                ("ec2_instance_type", "true"),
                ("account_id", "true"),
                ("retry_interval_s", "5"),
                ("tags_enabled", "false"),
                ("tags_include", "Name"),
            ]),
            &mut notes,
        )
        .unwrap();
        assert_eq!(
            f.fields,
            [
                Ec2Field::InstanceId,
                Ec2Field::InstanceType,
                Ec2Field::AccountId,
                Ec2Field::Hostname
            ]
        );
        assert_eq!(f.retry_interval, Duration::from_secs(5));
        assert!(f.imds_v1);
        assert_eq!(
            notes,
            ["f.conf:1: [FILTER] aws tags_include does not apply: Sluice adds the instance's metadata, not its tags or entity keys"]
        );
        for (entries, error) in [
            (("az", "maybe"), "[FILTER] aws az \"maybe\" is not true or false"),
            (("imds_version", "v3"), "[FILTER] aws imds_version \"v3\" is not v1 or v2"),
            (("retry_interval_s", "5m"), "[FILTER] aws retry_interval_s \"5m\" is not a number of seconds"),
            (("region", "x"), "[FILTER] aws has no option region; it takes az, ec2_instance_id, ec2_instance_type, private_ip, vpc_id, ami_id, account_id, hostname, imds_version, retry_interval_s"),
        ] {
            assert_eq!(
                AwsFilter::from_section(&section(&[entries]), &mut Vec::new()).unwrap_err(),
                error
            );
        }
    }

    #[test]
    fn what_was_found_is_added() {
        let f = AwsFilter::from_section(
            &section(&[("hostname", "true"), ("private_ip", "true")]),
            &mut Vec::new(),
        )
        .unwrap();
        let mut record = Record::default();
        record.insert("log", "x");
        record.insert("az", "mine");
        f.apply(&mut record);
        assert_eq!(
            Json::Object(record.to_json()),
            json!({"log": "x", "az": "mine"})
        );
        f.found
            .set(Ec2Field::Hostname, "ip-10-0-0-1.ec2.internal".into());
        f.found.set(Ec2Field::Az, "us-east-1a".into());
        f.found.set(Ec2Field::VpcId, "vpc-1".into());
        f.apply(&mut record);
        assert_eq!(
            Json::Object(record.to_json()),
            json!({"log": "x", "az": "us-east-1a", "hostname": "ip-10-0-0-1.ec2.internal"})
        );
    }

    #[test]
    fn the_account_comes_from_the_identity_document() {
        assert_eq!(
            account_id(r#"{"accountId":"123456789012","region":"us-east-1"}"#),
            Ok("123456789012".to_string())
        );
        assert_eq!(
            account_id("{}"),
            Err("the instance identity document has no accountId".to_string())
        );
    }
}
