//! One classified line as one JSON object: the shape `sluice parse` prints
//! and the sidecar's outputs build on.

use sluice_parser::{json_out, Classified, Classifier, Redactor, RouteTable};

/// Everything needed to turn a raw line into its redacted JSON object.
pub struct LineRenderer {
    pub classifier: Classifier,
    pub redactor: Redactor,
    pub routes: RouteTable,
}

impl LineRenderer {
    /// Appends `{"kind":"access",...,"route":"..."}` or
    /// `{"kind":"app","log":"..."}` for `line` (without a newline).
    pub fn render(&self, line: &str, out: &mut String) {
        match self.classifier.classify(line) {
            Classified::Access(mut record) => {
                self.redactor.redact_record(&mut record);
                out.push_str("{\"kind\":\"access\"");
                out.push(',');
                if !record.write_json_members(out) {
                    out.pop();
                }
                out.push_str(",\"route\":");
                json_out::write_str(out, &self.routes.route_key(&record));
                out.push('}');
            }
            Classified::App(text) => {
                out.push_str("{\"kind\":\"app\",\"log\":");
                json_out::write_str(out, &self.redactor.redact_text(text));
                out.push('}');
            }
        }
    }
}
