//! The normalised field names of an access record.
//!
//! Names follow ECS Service Connect's JSON access-log keys, so a record parsed
//! from a text line and one parsed from a JSON line look the same downstream.

/// The dedicated fields, each spelled once with its JSON key: the enum,
/// the list of all of them, and the member text written before a value
/// (a record writes a dozen members per line, and a member prepared whole
/// is one copy instead of three).
macro_rules! fields {
    ($(#[$attr:meta])* $($field:ident => $name:literal,)*) => {
        $(#[$attr])*
        pub enum Field {
            $($field,)*
        }

        impl Field {
            /// Number of dedicated fields.
            pub const COUNT: usize = [$($name),*].len();

            /// Every dedicated field, in the order records are written.
            pub const ALL: [Field; Field::COUNT] = [$(Field::$field,)*];

            /// The JSON key of this field.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Field::$field => $name,)*
                }
            }

            /// `"name":`, the field's member name in JSON text.
            pub(crate) const fn json_member(self) -> &'static str {
                match self {
                    $(Field::$field => concat!("\"", $name, "\":"),)*
                }
            }

            /// [`Field::json_member`] escaped as the contents of a JSON
            /// string: `\"name\":`.
            pub(crate) const fn escaped_json_member(self) -> &'static str {
                match self {
                    $(Field::$field => concat!("\\\"", $name, "\\\":"),)*
                }
            }
        }
    };
}

fields! {
    /// A field of the normalised access record that has a dedicated name.
    ///
    /// Operators without one become "extra" fields named after the operator in
    /// snake_case (see [`crate::Format`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    StartTime => "start_time",
    Method => "method",
    Path => "path",
    Protocol => "protocol",
    ResponseCode => "response_code",
    ResponseFlags => "response_flags",
    ResponseCodeDetails => "response_code_details",
    BytesReceived => "bytes_received",
    BytesSent => "bytes_sent",
    Duration => "duration",
    UpstreamServiceTime => "upstream_service_time",
    ForwardedFor => "forwarded_for",
    UserAgent => "user_agent",
    RequestId => "request_id",
    Authority => "authority",
    UpstreamHost => "upstream_host",
    GrpcStatus => "grpc_status",
    StreamId => "stream_id",
    DownstreamRemoteAddress => "downstream_remote_address",
    DownstreamRemotePort => "downstream_remote_port",
    ConnectionTerminationDetails => "connection_termination_details",
    ConnectionId => "connection_id",
}

impl Field {
    /// The field a JSON access-log key names. `duration_ms` (Service Connect's
    /// HTTP/1 JSON key) is the same field as `duration`.
    pub fn from_json_key(key: &str) -> Option<Field> {
        if key == "duration_ms" {
            return Some(Field::Duration);
        }
        Field::ALL.into_iter().find(|f| f.name() == key)
    }

    /// Whether the value is a JSON number in the normalised record.
    pub const fn is_numeric(self) -> bool {
        matches!(
            self,
            Field::ResponseCode
                | Field::BytesReceived
                | Field::BytesSent
                | Field::Duration
                | Field::UpstreamServiceTime
                | Field::DownstreamRemotePort
        )
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_out::JsonOut;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
    }

    #[test]
    fn prepared_members_are_the_names_written_out() {
        for f in Field::ALL {
            let mut plain = String::new();
            plain.member_name(f.name());
            assert_eq!(f.json_member(), plain);
            assert_eq!(f.escaped_json_member(), crate::json_out::escape(&plain));
        }
        assert_eq!(Field::StartTime.json_member(), r#""start_time":"#);
        assert_eq!(Field::StartTime.escaped_json_member(), r#"\"start_time\":"#);
    }

    #[test]
    fn json_keys_round_trip() {
        for f in Field::ALL {
            assert_eq!(Field::from_json_key(f.name()), Some(f));
        }
        assert_eq!(Field::from_json_key("duration_ms"), Some(Field::Duration));
        assert_eq!(Field::from_json_key("status"), None);
    }
}
