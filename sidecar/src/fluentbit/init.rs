//! aws-for-fluent-bit's init image (`init/fluent_bit_init_process.go`):
//! configuration files named by environment variables, which the init
//! process adds to the generated configuration before it starts Fluent Bit.
//!
//! - every variable whose name holds `aws_fluent_bit_init_file` (or
//!   `_File`) names a file in the image: one that holds a `[PARSER]` or
//!   `[MULTILINE_PARSER]` section is a parsers file (`-R`), its parsers
//!   join; any other is included after the generated file (`@INCLUDE`);
//! - one whose name holds `aws_fluent_bit_init_s3` (or `_S3`) names a file
//!   in S3, which Sluice does not download: refused at start, naming the
//!   variable, so that the configuration it holds is never silently left
//!   out.
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
/// once.
pub fn init_files(
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Vec<InitFile>, Vec<ConfigError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in vars {
        let error = |message: String| ConfigError {
            key: name.clone(),
            message,
        };
        if name.contains("aws_fluent_bit_init_s3") || name.contains("aws_fluent_bit_init_S3") {
            errors.push(error(format!(
                "{value}: Sluice does not download configuration files from S3 as aws-for-fluent-bit's init image does; put the file in the image and name it with an aws_fluent_bit_init_file variable, or use the task definition's config-file-type file"
            )));
        } else if name.contains("aws_fluent_bit_init_file")
            || name.contains("aws_fluent_bit_init_File")
        {
            match std::fs::read_to_string(&value) {
                Ok(text) if text.contains("[PARSER]") || text.contains("[MULTILINE_PARSER]") => {
                    files.push(InitFile::Parsers(value.into()))
                }
                Ok(_) => files.push(InitFile::Config(value.into())),
                Err(e) => errors.push(error(format!("{value}: cannot read: {e}"))),
            }
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_sorted_as_the_init_process_sorts_them() {
        let dir = std::env::temp_dir().join(format!("sluice-init-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
            init_files(vars.into_iter()).unwrap(),
            [InitFile::Config(extra.clone()), InitFile::Parsers(parsers)]
        );
        let errors: Vec<String> = init_files(
            [
                ("aws_fluent_bit_init_s3_1", "arn:aws:s3:::bucket/extra.conf"),
                ("aws_fluent_bit_init_file_9", "/no/such.conf"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into_iter(),
        )
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].starts_with("aws_fluent_bit_init_s3_1: arn:aws:s3:::bucket/extra.conf: Sluice does not download configuration files from S3"), "{errors:?}");
        assert!(
            errors[1].starts_with("aws_fluent_bit_init_file_9: /no/such.conf: cannot read: "),
            "{errors:?}"
        );
    }
}
