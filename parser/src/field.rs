//! The normalised field names of an access record.
//!
//! Names follow ECS Service Connect's JSON access-log keys, so a record parsed
//! from a text line and one parsed from a JSON line look the same downstream.

/// A field of the normalised access record that has a dedicated name.
///
/// Operators without one become "extra" fields named after the operator in
/// snake_case (see [`crate::Format`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    StartTime,
    Method,
    Path,
    Protocol,
    ResponseCode,
    ResponseFlags,
    ResponseCodeDetails,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamServiceTime,
    ForwardedFor,
    UserAgent,
    RequestId,
    Authority,
    UpstreamHost,
    GrpcStatus,
    StreamId,
    DownstreamRemoteAddress,
    DownstreamRemotePort,
    ConnectionTerminationDetails,
    ConnectionId,
}

impl Field {
    /// Number of dedicated fields.
    pub const COUNT: usize = 22;

    /// Every dedicated field, in the order records are written.
    pub const ALL: [Field; Field::COUNT] = [
        Field::StartTime,
        Field::Method,
        Field::Path,
        Field::Protocol,
        Field::ResponseCode,
        Field::ResponseFlags,
        Field::ResponseCodeDetails,
        Field::BytesReceived,
        Field::BytesSent,
        Field::Duration,
        Field::UpstreamServiceTime,
        Field::ForwardedFor,
        Field::UserAgent,
        Field::RequestId,
        Field::Authority,
        Field::UpstreamHost,
        Field::GrpcStatus,
        Field::StreamId,
        Field::DownstreamRemoteAddress,
        Field::DownstreamRemotePort,
        Field::ConnectionTerminationDetails,
        Field::ConnectionId,
    ];

    /// The JSON key of this field.
    pub const fn name(self) -> &'static str {
        match self {
            Field::StartTime => "start_time",
            Field::Method => "method",
            Field::Path => "path",
            Field::Protocol => "protocol",
            Field::ResponseCode => "response_code",
            Field::ResponseFlags => "response_flags",
            Field::ResponseCodeDetails => "response_code_details",
            Field::BytesReceived => "bytes_received",
            Field::BytesSent => "bytes_sent",
            Field::Duration => "duration",
            Field::UpstreamServiceTime => "upstream_service_time",
            Field::ForwardedFor => "forwarded_for",
            Field::UserAgent => "user_agent",
            Field::RequestId => "request_id",
            Field::Authority => "authority",
            Field::UpstreamHost => "upstream_host",
            Field::GrpcStatus => "grpc_status",
            Field::StreamId => "stream_id",
            Field::DownstreamRemoteAddress => "downstream_remote_address",
            Field::DownstreamRemotePort => "downstream_remote_port",
            Field::ConnectionTerminationDetails => "connection_termination_details",
            Field::ConnectionId => "connection_id",
        }
    }

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

    #[test]
    fn all_is_in_declaration_order() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
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
