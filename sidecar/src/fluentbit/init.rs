//! aws-for-fluent-bit's init image (`init/fluent_bit_init_process.go`):
//! configuration files named by environment variables, which the init
//! process adds to the generated configuration before it starts Fluent Bit.
//!
//! - every variable whose name holds `aws_fluent_bit_init_file` (or
//!   `_File`) names a file in the image: one that holds a `[PARSER]` or
//!   `[MULTILINE_PARSER]` section is a parsers file (`-R`), its parsers
//!   join; any other is included after the generated file (`@INCLUDE`);
//! - one whose name holds `aws_fluent_bit_init_s3` (or `_S3`) names a file
//!   in S3 by its ARN (`arn:aws:s3:::bucket/key`): downloaded with the
//!   task's credentials into a directory of its own, then taken as above.
//!   The bucket's region comes from HeadBucket, else GetBucketLocation, as
//!   the init process finds it. A file that cannot be downloaded stops the
//!   start, naming the variable: the configuration it holds is never
//!   silently left out.
//!
//! The variables the init process exports from the task metadata
//! (`${ECS_TASK_ID}`, ...) are [`super::variables`].

use std::path::PathBuf;

use crate::config::ConfigError;

/// A file the init image would add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitFile {
    /// Included after the generated configuration.
    Config(PathBuf),
    /// Its `[PARSER]` and `[MULTILINE_PARSER]` sections join.
    Parsers(PathBuf),
}

impl InitFile {
    pub fn path(&self) -> &std::path::Path {
        match self {
            InitFile::Config(p) | InitFile::Parsers(p) => p,
        }
    }
}

/// The files `vars` (the environment, in its order) name; every problem at
/// once. `region`: the task's (its metadata's), where the S3 client starts
/// (else `us-east-1`, as the init process does).
pub fn init_files(
    vars: impl Iterator<Item = (String, String)>,
    region: Option<&str>,
) -> Result<Vec<InitFile>, Vec<ConfigError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in vars {
        let error = |message: String| ConfigError {
            key: name.clone(),
            message,
        };
        let path =
            if name.contains("aws_fluent_bit_init_s3") || name.contains("aws_fluent_bit_init_S3") {
                match s3::download(&value, region.unwrap_or("us-east-1")) {
                    Ok(path) => path,
                    Err(e) => {
                        errors.push(error(format!("{value}: {e}")));
                        continue;
                    }
                }
            } else if name.contains("aws_fluent_bit_init_file")
                || name.contains("aws_fluent_bit_init_File")
            {
                PathBuf::from(&value)
            } else {
                continue;
            };
        match std::fs::read_to_string(&path) {
            Ok(text) if text.contains("[PARSER]") || text.contains("[MULTILINE_PARSER]") => {
                files.push(InitFile::Parsers(path))
            }
            Ok(_) => files.push(InitFile::Config(path)),
            Err(e) => errors.push(error(format!("{value}: cannot read: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

mod s3 {
    //! One configuration file from S3, as the init process downloads it.

    use std::path::PathBuf;
    use std::time::Duration;

    use aws_config::timeout::TimeoutConfig;
    use aws_config::{BehaviorVersion, Region};

    /// A configuration file larger than this is refused (the init image's
    /// files are a few KiB).
    const MAX_BYTES: usize = 4 << 20;

    /// `arn:aws:s3:::bucket/key` as the bucket and the key.
    pub(super) fn bucket_and_key(arn: &str) -> Result<(&str, &str), String> {
        let not_s3 = || "not an S3 ARN such as arn:aws:s3:::bucket/extra.conf".to_string();
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let resource = match parts.as_slice() {
            ["arn", _, "s3", _, _, resource] => *resource,
            _ => return Err(not_s3()),
        };
        match resource.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket, key)),
            _ => Err("an S3 ARN names a bucket and a key: arn:aws:s3:::bucket/extra.conf".into()),
        }
    }

    /// Downloads the file `arn` names into `sluice-init-s3-files` in the
    /// temporary directory; its path. The environment's credentials (the
    /// task role's) and endpoint (`AWS_ENDPOINT_URL_S3`) apply.
    pub(super) fn download(arn: &str, task_region: &str) -> Result<PathBuf, String> {
        let (bucket, key) = bucket_and_key(arn)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the S3 client: {e}"))?;
        let bytes = runtime.block_on(fetch(bucket, key, task_region))?;
        let dir = std::env::temp_dir().join("sluice-init-s3-files");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // The key's last part, as the init process names it.
        let name = key.rsplit('/').next().unwrap_or(key);
        let path = dir.join(name);
        std::fs::write(&path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        tracing::info!(%arn, path = %path.display(), bytes = bytes.len(), "configuration file downloaded from S3");
        Ok(path)
    }

    async fn client(region: &str) -> aws_sdk_s3::Client {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(20))
                    .build(),
            )
            .load()
            .await;
        // A local endpoint (tests, an endpoint by URL) takes the bucket in
        // the path.
        let by_url = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some();
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(by_url)
                .build(),
        )
    }

    async fn fetch(bucket: &str, key: &str, task_region: &str) -> Result<Vec<u8>, String> {
        use aws_sdk_s3::error::DisplayErrorContext;
        let first = client(task_region).await;
        let region = match first.head_bucket().bucket(bucket).send().await {
            Ok(out) if out.bucket_region().is_some() => out.bucket_region().map(str::to_string),
            _ => {
                let out = first
                    .get_bucket_location()
                    .bucket(bucket)
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot find the bucket's region: {}",
                            DisplayErrorContext(e)
                        )
                    })?;
                // As the init process reads it: none is us-east-1, EU is
                // eu-west-1.
                Some(match out.location_constraint().map(|c| c.as_str()) {
                    None | Some("") => "us-east-1".to_string(),
                    Some("EU") => "eu-west-1".to_string(),
                    Some(other) => other.to_string(),
                })
            }
        };
        let client = match region {
            Some(r) if r != task_region => client(&r).await,
            _ => first,
        };
        let object = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("cannot download it: {}", DisplayErrorContext(e)))?;
        if object.content_length().unwrap_or(0) > MAX_BYTES as i64 {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| format!("cannot download it: {e}"))?
            .into_bytes();
        if body.len() > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        Ok(body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_sorted_as_the_init_process_sorts_them() {
        let tmp = tempfile::Builder::new()
            .prefix("sluice-init-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let parsers = dir.join("parsers.conf");
        std::fs::write(&parsers, "[MULTILINE_PARSER]\n    name p\n").unwrap();
        let extra = dir.join("extra.conf");
        std::fs::write(&extra, "[FILTER]\n    Name grep\n").unwrap();
        let text = |p: &std::path::Path| p.display().to_string();
        let vars = [
            ("PATH", "/bin".to_string()),
            ("aws_fluent_bit_init_file_2", text(&extra)),
            ("my_aws_fluent_bit_init_File_1", text(&parsers)),
        ]
        .map(|(k, v)| (k.to_string(), v));
        assert_eq!(
            init_files(vars.into_iter(), None).unwrap(),
            [InitFile::Config(extra.clone()), InitFile::Parsers(parsers)]
        );
        let errors: Vec<String> = init_files(
            [
                ("aws_fluent_bit_init_s3_1", "arn:aws:s3:::bucket"),
                ("aws_fluent_bit_init_file_9", "/no/such.conf"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into_iter(),
            None,
        )
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0],
            "aws_fluent_bit_init_s3_1: arn:aws:s3:::bucket: an S3 ARN names a bucket and a key: arn:aws:s3:::bucket/extra.conf"
        );
        assert!(
            errors[1].starts_with("aws_fluent_bit_init_file_9: /no/such.conf: cannot read: "),
            "{errors:?}"
        );
    }

    #[test]
    fn s3_arns() {
        assert_eq!(
            s3::bucket_and_key("arn:aws:s3:::user-bucket/configs/extra.conf"),
            Ok(("user-bucket", "configs/extra.conf"))
        );
        assert_eq!(s3::bucket_and_key("arn:aws-cn:s3:::b/k"), Ok(("b", "k")));
        for bad in [
            "s3://b/k",
            "arn:aws:s3:::b",
            "arn:aws:s3:::/k",
            "arn:aws:ecs:::b/k",
        ] {
            assert!(s3::bucket_and_key(bad).is_err(), "{bad}");
        }
    }
}
