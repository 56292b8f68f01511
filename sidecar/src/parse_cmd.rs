//! `sluice parse`: stdin lines in, one JSON object per line out, in order.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use sluice_parser::{decode_line, Classifier, Format, Redactor, RouteTable, BUILTIN_TEXT_FORMATS};

use crate::cli::ParseArgs;
use crate::render::LineRenderer;

pub fn run(args: ParseArgs) -> ExitCode {
    let renderer = match build_renderer(&args) {
        Ok(r) => r,
        Err(message) => {
            eprintln!("sluice parse: {message}");
            return ExitCode::from(2);
        }
    };
    match copy_lines(&renderer, io::stdin().lock(), io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        // `sluice parse | head` closing the pipe early is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice parse: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build_renderer(args: &ParseArgs) -> Result<LineRenderer, String> {
    let mut classifier = Classifier::new();
    for (i, spec) in args.formats.iter().enumerate() {
        classifier.add_format(format_arg(i, spec)?);
    }
    let mut redactor = Redactor::new(args.redact);
    for key in &args.allow {
        redactor.allow(key);
    }
    for pattern in &args.patterns {
        redactor
            .add_pattern(pattern)
            .map_err(|e| format!("--redact-pattern {pattern:?}: {e}"))?;
    }
    let mut routes = RouteTable::new();
    for template in &args.routes {
        routes
            .add_template(template)
            .map_err(|e| format!("--route: {e}\n{}", e.pointer(template)))?;
    }
    Ok(LineRenderer {
        classifier,
        redactor,
        routes,
        access_containers: Vec::new(),
        app_lines_as_json: true,
        collect_facts: false,
        metadata: crate::render::Metadata::All,
    })
}

/// A `--format` value: a built-in name or a format string (anything with `%`).
fn format_arg(index: usize, spec: &str) -> Result<Format, String> {
    if let Some(format) = Format::builtin(spec) {
        return Ok(format);
    }
    if !spec.contains('%') {
        let names: Vec<&str> = BUILTIN_TEXT_FORMATS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "--format {spec:?} is neither a built-in format ({}) nor an Envoy format string",
            names.join(", ")
        ));
    }
    Format::compile(format!("format-{}", index + 1), spec)
        .map_err(|e| format!("--format: {e}\n{}", e.pointer(spec)))
}

/// Writes one JSON line per input line. Output is flushed whenever no more
/// input is buffered, so `tail -f | sluice parse` shows lines as they come.
fn copy_lines(renderer: &LineRenderer, input: impl BufRead, output: impl Write) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut writer = BufWriter::with_capacity(1 << 16, output);
    let mut line = Vec::new();
    let mut json = String::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        json.clear();
        renderer.render(&decode_line(&line), &mut json);
        json.push('\n');
        writer.write_all(json.as_bytes())?;
        if reader.buffer().is_empty() {
            writer.flush()?;
        }
    }
    writer.flush()
}
