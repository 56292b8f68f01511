//! Every format against real lines: the public samples collected in
//! shared/specs.md §1-2, plus Service Connect and application lines.

use serde_json::{json, Value as Json};
use sluice_parser::{Classified, Classifier, Field, Format, QueryMode, Redactor, RouteTable};

/// Classifies `line` with `classifier` and renders it the way `sluice parse`
/// does (without redaction), as a JSON value.
fn render(classifier: &Classifier, line: &str) -> Json {
    match classifier.classify(line) {
        Classified::Access(record) => {
            let mut out = String::from("{");
            record.write_json_members(&mut out);
            out.push('}');
            let mut v: Json = serde_json::from_str(&out).unwrap();
            v["route"] = json!(RouteTable::new().route_key(&record));
            v
        }
        Classified::App(text) => json!({ "app": text }),
    }
}

fn check(line: &str, expected: Json) {
    check_with(&Classifier::new(), line, expected);
}

fn check_with(classifier: &Classifier, line: &str, expected: Json) {
    assert_eq!(render(classifier, line), expected, "line: {line}");
}

#[test]
fn envoy_default_format_samples() {
    check(
        r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#,
        json!({"start_time":"2016-04-15T20:17:00.310Z","method":"POST","path":"/api/v1/locations","protocol":"HTTP/2","response_code":204,"bytes_received":154,"bytes_sent":0,"duration":226,"upstream_service_time":100,"forwarded_for":"10.0.35.28","user_agent":"nsq2http","request_id":"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2","authority":"locations","upstream_host":"tcp://10.0.2.1:80","route":"POST /api/v1/locations"}),
    );
    check(
        r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 UF 1 2 3 - "x.x.x.x" "user-agent-set" "id" "host" "-""#,
        json!({"start_time":"1999-01-01T00:00:00.000Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":0,"response_flags":"UF","bytes_received":1,"bytes_sent":2,"duration":3,"forwarded_for":"x.x.x.x","user_agent":"user-agent-set","request_id":"id","authority":"host","route":"GET /"}),
    );
    check(
        r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 DC 1 2 3 - "-" "-" "-" "-" "10.0.0.5:1234""#,
        json!({"start_time":"1999-01-01T00:00:00.000Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":0,"response_flags":"DC","bytes_received":1,"bytes_sent":2,"duration":3,"upstream_host":"10.0.0.5:1234","route":"GET /"}),
    );
    check(
        r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 - 1 2 3 999 "-" "-" "-" "-" "-""#,
        json!({"start_time":"1999-01-01T00:00:00.000Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":0,"bytes_received":1,"bytes_sent":2,"duration":3,"upstream_service_time":999,"route":"GET /"}),
    );
    check(
        r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 - 1 2 3 - "-" "-" "-" "-" "-""#,
        json!({"start_time":"1999-01-01T00:00:00.000Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":0,"bytes_received":1,"bytes_sent":2,"duration":3,"route":"GET /"}),
    );
    check(
        r#"[2018-08-14T23:08:23.803Z] "GET /server_info HTTP/1.1" 200 - 0 92 6 - "192.88.34.220" "curl/7.38.0" "-" "localhost:10000" "-""#,
        json!({"start_time":"2018-08-14T23:08:23.803Z","method":"GET","path":"/server_info","protocol":"HTTP/1.1","response_code":200,"bytes_received":0,"bytes_sent":92,"duration":6,"forwarded_for":"192.88.34.220","user_agent":"curl/7.38.0","authority":"localhost:10000","route":"GET /server_info"}),
    );
}

/// envoyproxy/envoy#4191: a `"` in the user agent fakes extra quoted fields.
/// Only the user agent may hold quotes, so the fields after it stay right.
#[test]
fn quote_injection_in_user_agent() {
    check(
        r#"[2018-08-14T23:08:23.803Z] "GET / HTTP/1.1" 200 - 0 4521 0 - "192.88.34.220" "USER_AGENT_I_WANT_YOU_TO_SEE" "AJ" "WAS" "HERE" "-" "localhost:10000" "-""#,
        json!({"start_time":"2018-08-14T23:08:23.803Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":200,"bytes_received":0,"bytes_sent":4521,"duration":0,"forwarded_for":"192.88.34.220","user_agent":"USER_AGENT_I_WANT_YOU_TO_SEE\" \"AJ\" \"WAS\" \"HERE","authority":"localhost:10000","route":"GET /"}),
    );
}

#[test]
fn envoy_default_with_response_code_details() {
    let c = Classifier::new();
    let cases = [
        (
            r#"[2024-07-20T07:05:54.173Z] "GET /gateway-timeout?delayMs=5000 HTTP/1.1" 504 UT response_timeout 0 24 4497 - "-" "curl/8.4.0" "6d67d674-2122-4a2d-b172-0be70c674371" "localhost:8000" "172.27.0.2:8080""#,
            json!({"start_time":"2024-07-20T07:05:54.173Z","method":"GET","path":"/gateway-timeout?delayMs=5000","protocol":"HTTP/1.1","response_code":504,"response_flags":"UT","response_code_details":"response_timeout","bytes_received":0,"bytes_sent":24,"duration":4497,"user_agent":"curl/8.4.0","request_id":"6d67d674-2122-4a2d-b172-0be70c674371","authority":"localhost:8000","upstream_host":"172.27.0.2:8080","route":"GET /gateway-timeout"}),
        ),
        (
            r#"[2024-07-20T07:06:24.729Z] "GET /no-healthy-upstream HTTP/1.1" 503 UH no_healthy_upstream 0 19 0 - "-" "curl/8.4.0" "2f22e5c6-2387-49b8-96c4-7b3a1678dbb0" "localhost:8000" "-""#,
            json!({"start_time":"2024-07-20T07:06:24.729Z","method":"GET","path":"/no-healthy-upstream","protocol":"HTTP/1.1","response_code":503,"response_flags":"UH","response_code_details":"no_healthy_upstream","bytes_received":0,"bytes_sent":19,"duration":0,"user_agent":"curl/8.4.0","request_id":"2f22e5c6-2387-49b8-96c4-7b3a1678dbb0","authority":"localhost:8000","route":"GET /no-healthy-upstream"}),
        ),
        (
            r#"[2024-07-20T07:09:48.470Z] "GET /upstream-connection-failure HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111} 0 145 0 - "-" "curl/8.4.0" "44898dba-8d8e-48f4-93f7-23e4b4c592c0" "localhost:8000" "172.28.0.2:801""#,
            json!({"start_time":"2024-07-20T07:09:48.470Z","method":"GET","path":"/upstream-connection-failure","protocol":"HTTP/1.1","response_code":503,"response_flags":"UF","response_code_details":"upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}","bytes_received":0,"bytes_sent":145,"duration":0,"user_agent":"curl/8.4.0","request_id":"44898dba-8d8e-48f4-93f7-23e4b4c592c0","authority":"localhost:8000","upstream_host":"172.28.0.2:801","route":"GET /upstream-connection-failure"}),
        ),
        (
            r#"[2024-07-20T07:23:58.586Z] "GET /upstream-connection-failure/after-response HTTP/1.1" 200 UPE upstream_reset_after_response_started{protocol_error} 0 19 1006 0 "-" "curl/8.4.0" "84ef2354-e85c-4e90-bc6e-bb81d5dc70e8" "localhost:8000" "192.168.5.2:8080""#,
            json!({"start_time":"2024-07-20T07:23:58.586Z","method":"GET","path":"/upstream-connection-failure/after-response","protocol":"HTTP/1.1","response_code":200,"response_flags":"UPE","response_code_details":"upstream_reset_after_response_started{protocol_error}","bytes_received":0,"bytes_sent":19,"duration":1006,"upstream_service_time":0,"user_agent":"curl/8.4.0","request_id":"84ef2354-e85c-4e90-bc6e-bb81d5dc70e8","authority":"localhost:8000","upstream_host":"192.168.5.2:8080","route":"GET /upstream-connection-failure/after-response"}),
        ),
        (
            r#"[2024-07-20T07:32:21.519Z] "GET /upstream-service-overflow?delayMs=5000 HTTP/1.1" 503 UO upstream_reset_before_response_started{overflow} 0 81 0 - "-" "curl/8.4.0" "c414b70a-7c85-4f78-9c35-2ce2b9131aa3" "localhost:8000" "172.31.0.3:8080""#,
            json!({"start_time":"2024-07-20T07:32:21.519Z","method":"GET","path":"/upstream-service-overflow?delayMs=5000","protocol":"HTTP/1.1","response_code":503,"response_flags":"UO","response_code_details":"upstream_reset_before_response_started{overflow}","bytes_received":0,"bytes_sent":81,"duration":0,"user_agent":"curl/8.4.0","request_id":"c414b70a-7c85-4f78-9c35-2ce2b9131aa3","authority":"localhost:8000","upstream_host":"172.31.0.3:8080","route":"GET /upstream-service-overflow"}),
        ),
        (
            r#"[2024-07-20T07:38:15.899Z] "GET /no-upstream-cluster HTTP/1.1" 503 NC cluster_not_found 0 0 0 - "-" "curl/8.4.0" "8a23b89d-1dcd-4f5c-ae55-58e79d74d8ca" "localhost:8000" "-""#,
            json!({"start_time":"2024-07-20T07:38:15.899Z","method":"GET","path":"/no-upstream-cluster","protocol":"HTTP/1.1","response_code":503,"response_flags":"NC","response_code_details":"cluster_not_found","bytes_received":0,"bytes_sent":0,"duration":0,"user_agent":"curl/8.4.0","request_id":"8a23b89d-1dcd-4f5c-ae55-58e79d74d8ca","authority":"localhost:8000","route":"GET /no-upstream-cluster"}),
        ),
        (
            r#"[2024-07-20T07:45:34.828Z] "GET /upstream-retry-exceeds?statusCode=500 HTTP/1.1" 500 URX via_upstream 0 680 59 59 "-" "curl/8.4.0" "0df38f52-08eb-4b67-a097-ece7427c7238" "localhost:8000" "192.168.48.2:8080""#,
            json!({"start_time":"2024-07-20T07:45:34.828Z","method":"GET","path":"/upstream-retry-exceeds?statusCode=500","protocol":"HTTP/1.1","response_code":500,"response_flags":"URX","response_code_details":"via_upstream","bytes_received":0,"bytes_sent":680,"duration":59,"upstream_service_time":59,"user_agent":"curl/8.4.0","request_id":"0df38f52-08eb-4b67-a097-ece7427c7238","authority":"localhost:8000","upstream_host":"192.168.48.2:8080","route":"GET /upstream-retry-exceeds"}),
        ),
        (
            r#"[2024-07-21T08:32:59.547Z] "GET /ws HTTP/1.1" 101 DC downstream_remote_disconnect 61 105 13342 - "-" "-" "e5248829-b318-443a-a763-e2460530f070" "localhost:8000" "192.168.5.2:8080""#,
            json!({"start_time":"2024-07-21T08:32:59.547Z","method":"GET","path":"/ws","protocol":"HTTP/1.1","response_code":101,"response_flags":"DC","response_code_details":"downstream_remote_disconnect","bytes_received":61,"bytes_sent":105,"duration":13342,"request_id":"e5248829-b318-443a-a763-e2460530f070","authority":"localhost:8000","upstream_host":"192.168.5.2:8080","route":"GET /ws"}),
        ),
        (
            r#"[2024-07-21T09:11:33.481Z] "GET /ws HTTP/1.1" 101 SI stream_idle_timeout 100 154 413322 - "-" "-" "8a458ce2-bb8d-4e80-a305-f323bbab338f" "localhost:8000" "192.168.5.2:8080""#,
            json!({"start_time":"2024-07-21T09:11:33.481Z","method":"GET","path":"/ws","protocol":"HTTP/1.1","response_code":101,"response_flags":"SI","response_code_details":"stream_idle_timeout","bytes_received":100,"bytes_sent":154,"duration":413322,"request_id":"8a458ce2-bb8d-4e80-a305-f323bbab338f","authority":"localhost:8000","upstream_host":"192.168.5.2:8080","route":"GET /ws"}),
        ),
    ];
    for (line, expected) in cases {
        check_with(&c, line, expected);
    }
}

#[test]
fn several_flags_ipv6_and_protocols() {
    check(
        r#"[2025-03-01T10:00:00.000Z] "GET /a HTTP/3" 503 UF,URX 0 91 12 - "-" "grpc-go/1.60" "r1" "svc.local" "[2001:db8::1]:8080""#,
        json!({"start_time":"2025-03-01T10:00:00.000Z","method":"GET","path":"/a","protocol":"HTTP/3","response_code":503,"response_flags":"UF,URX","bytes_received":0,"bytes_sent":91,"duration":12,"user_agent":"grpc-go/1.60","request_id":"r1","authority":"svc.local","upstream_host":"[2001:db8::1]:8080","route":"GET /a"}),
    );
}

#[test]
fn service_connect_text_formats() {
    // HTTP: no response flags.
    check(
        r#"[2025-11-04T06:49:07.518Z] "GET /orders/123?x=1 HTTP/1.1" 200 0 512 4 3 "-" "curl/8.5.0" "4c2b1f0e-7b4e-4d8e-9d3c-1b2a3c4d5e6f" "orders.local:8080" "10.0.1.7:8080""#,
        json!({"start_time":"2025-11-04T06:49:07.518Z","method":"GET","path":"/orders/123?x=1","protocol":"HTTP/1.1","response_code":200,"bytes_received":0,"bytes_sent":512,"duration":4,"upstream_service_time":3,"user_agent":"curl/8.5.0","request_id":"4c2b1f0e-7b4e-4d8e-9d3c-1b2a3c4d5e6f","authority":"orders.local:8080","upstream_host":"10.0.1.7:8080","route":"GET /orders/{id}"}),
    );
    // HTTP2: stream id appended.
    check(
        r#"[2025-11-04T06:49:07.518Z] "POST /cart HTTP/2" 201 17 2 9 8 "-" "okhttp/4.12" "r-2" "cart:80" "10.0.1.8:80" "5""#,
        json!({"start_time":"2025-11-04T06:49:07.518Z","method":"POST","path":"/cart","protocol":"HTTP/2","response_code":201,"bytes_received":17,"bytes_sent":2,"duration":9,"upstream_service_time":8,"user_agent":"okhttp/4.12","request_id":"r-2","authority":"cart:80","upstream_host":"10.0.1.8:80","stream_id":"5","route":"POST /cart"}),
    );
    // gRPC: grpc status after the response code, stream id appended.
    check(
        r#"[2025-11-04T06:49:07.518Z] "POST /shop.Cart/Get HTTP/2" 200 OK 5 12 3 2 "-" "grpc-go/1.60.1" "r-3" "cart:50051" "10.0.1.9:50051" "7""#,
        json!({"start_time":"2025-11-04T06:49:07.518Z","method":"POST","path":"/shop.Cart/Get","protocol":"HTTP/2","response_code":200,"grpc_status":"OK","bytes_received":5,"bytes_sent":12,"duration":3,"upstream_service_time":2,"user_agent":"grpc-go/1.60.1","request_id":"r-3","authority":"cart:50051","upstream_host":"10.0.1.9:50051","stream_id":"7","route":"POST /shop.Cart/Get"}),
    );
    check(
        r#"[2025-11-04T06:49:07.518Z] "POST /shop.Cart/Get HTTP/2" 200 - 5 0 3 - "-" "grpc-go/1.60.1" "r-4" "cart:50051" "-" "9""#,
        json!({"start_time":"2025-11-04T06:49:07.518Z","method":"POST","path":"/shop.Cart/Get","protocol":"HTTP/2","response_code":200,"bytes_received":5,"bytes_sent":0,"duration":3,"user_agent":"grpc-go/1.60.1","request_id":"r-4","authority":"cart:50051","stream_id":"9","route":"POST /shop.Cart/Get"}),
    );
    // TCP.
    check(
        "[2025-11-04T06:49:07.518Z] 10.0.1.20:51234 51234 1024 2048 3500 - 42",
        json!({"start_time":"2025-11-04T06:49:07.518Z","bytes_received":1024,"bytes_sent":2048,"duration":3500,"downstream_remote_address":"10.0.1.20:51234","downstream_remote_port":51234,"connection_id":"42","route":"TCP"}),
    );
}

#[test]
fn service_connect_json() {
    // Typed: numbers as numbers or strings, null for unset, duration_ms.
    check(
        r#"{"start_time":"2025-11-04T06:49:07.518Z","method":"GET","path":"/users/42","protocol":"HTTP/1.1","response_code":200,"bytes_received":0,"bytes_sent":"1542","duration_ms":12,"upstream_service_time":"11","forwarded_for":null,"user_agent":"curl/8.5.0","request_id":"b7d3","authority":"users:8080","upstream_host":"10.0.2.4:8080"}"#,
        json!({"start_time":"2025-11-04T06:49:07.518Z","method":"GET","path":"/users/42","protocol":"HTTP/1.1","response_code":200,"bytes_received":0,"bytes_sent":1542,"duration":12,"upstream_service_time":11,"user_agent":"curl/8.5.0","request_id":"b7d3","authority":"users:8080","upstream_host":"10.0.2.4:8080","route":"GET /users/{id}"}),
    );
    // HTTP2/gRPC keys.
    check(
        r#"{"start_time":"2025-11-04T06:49:07.518Z","method":"POST","path":"/shop.Cart/Get","protocol":"HTTP/2","response_code":200,"grpc_status":"OK","bytes_received":5,"bytes_sent":12,"duration":3,"upstream_service_time":null,"forwarded_for":null,"user_agent":"grpc-go/1.60.1","request_id":"r-3","authority":"cart:50051","upstream_host":"10.0.1.9:50051","stream_id":"7"}"#,
        json!({"start_time":"2025-11-04T06:49:07.518Z","method":"POST","path":"/shop.Cart/Get","protocol":"HTTP/2","response_code":200,"grpc_status":"OK","bytes_received":5,"bytes_sent":12,"duration":3,"user_agent":"grpc-go/1.60.1","request_id":"r-3","authority":"cart:50051","upstream_host":"10.0.1.9:50051","stream_id":"7","route":"POST /shop.Cart/Get"}),
    );
    // TCP JSON.
    check(
        r#"{"start_time":"2025-11-04T06:49:07.518Z","downstream_remote_address":"10.0.1.20:51234","downstream_remote_port":51234,"bytes_received":1024,"bytes_sent":2048,"duration":3500,"connection_termination_details":null,"connection_id":42}"#,
        json!({"start_time":"2025-11-04T06:49:07.518Z","bytes_received":1024,"bytes_sent":2048,"duration":3500,"downstream_remote_address":"10.0.1.20:51234","downstream_remote_port":51234,"connection_id":42,"route":"TCP"}),
    );
    // Envoy json_format: every value a string, "-" for unset, unknown keys kept.
    check(
        r#"{"start_time":"2025-11-04T06:49:07.518Z","method":"GET","path":"/a\/b","protocol":"HTTP/1.1","response_code":"404","response_flags":"NR","bytes_received":"0","bytes_sent":"0","duration":"1","upstream_service_time":"-","user_agent":"Mozilla/5.0 \"x\"","upstream_cluster":"-","route_name":"default"}"#,
        json!({"start_time":"2025-11-04T06:49:07.518Z","method":"GET","path":"/a/b","protocol":"HTTP/1.1","response_code":404,"response_flags":"NR","bytes_received":0,"bytes_sent":0,"duration":1,"user_agent":"Mozilla/5.0 \"x\"","route_name":"default","route":"GET /a/b"}),
    );
}

#[test]
fn application_lines() {
    let app = [
        "[2025-11-04 06:49:07.518][1][info][main] [source/server/server.cc:932] starting main dispatch loop",
        "[2025-11-04 06:49:07.518][15][warning][config] [source/extensions/config_subscription/grpc/grpc_stream.h:190] StreamAggregatedResources gRPC config stream closed",
        "Starting server on :8080",
        "Exception in thread \"main\" java.lang.NullPointerException",
        "\tat com.example.App.main(App.java:12)",
        r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08""#,
        r#"{"level":"info","ts":1730702947.518,"msg":"request served","path":"/users/42","status":200}"#,
        r#"{"start_time":"2025-11-04T06:49:07.518Z","level":"info","msg":"job started"}"#,
        r#"{"start_time":"2025-11-04T06:49:07.518Z","method":"GET","path":"/x","response_code":"abc"}"#,
        r#"[2025-11-04T06:49:07.518Z] "GET / HTTP/1.1" 200"#,
        "[",
        "{",
        "",
        "[info] ok",
    ];
    for line in app {
        check(line, json!({ "app": line }));
    }
}

#[test]
fn line_endings_are_not_part_of_the_line() {
    let line = r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 - 1 2 3 - "-" "-" "-" "-" "-""#;
    let c = Classifier::new();
    for ending in ["\n", "\r\n"] {
        let with = format!("{line}{ending}");
        assert_eq!(render(&c, &with), render(&c, line));
    }
    assert_eq!(render(&c, "hello\r\n"), json!({"app": "hello"}));
}

/// One value classified into again and again, as the sidecar does: each
/// line's outcome is its own, whatever the value held before.
#[test]
fn classify_into_a_held_value_forgets_the_last_line() {
    let access = r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;
    let other = r#"[2016-04-15T20:17:01.000Z] "GET / HTTP/1.1" 200 - 0 5 1 - "-" "-" "-" "-" "-""#;
    let c = Classifier::new();
    let mut held = Classified::App("");
    for line in [
        access,
        "hello\n",
        other,
        access,
        "[info] x\r\n",
        "{\"a\":1}",
    ] {
        c.classify_into(line, &mut held);
        assert_eq!(held, c.classify(line), "line: {line}");
    }
    c.classify_into(other, &mut held);
    let Classified::Access(record) = &held else {
        panic!("not an access record: {held:?}");
    };
    assert_eq!(record.uint(Field::ResponseCode), Some(200));
    assert_eq!(record.str(Field::UserAgent), None);
    c.classify_into("hello\n", &mut held);
    assert_eq!(held, Classified::App("hello"));
}

#[test]
fn user_format_strings() {
    let mut c = Classifier::new();
    c.add_format(
        Format::compile(
            "custom",
            "%START_TIME(%s)% %REQ(:METHOD)% %PATH(WQ:ORIG)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %REQUEST_DURATION% %REQ(X-B3-TRACEID)% \"%REQ(USER-AGENT)%\" %RESP(CONTENT-TYPE):20% 100%%\n",
        )
        .unwrap(),
    );
    check_with(
        &c,
        r#"1730702947 PUT /items/9f86d081884c7d659a2feaa0c55ad015 409 items-v2 7 463ac35c9f6413ad "Go-http-client/1.1" application/json 100%"#,
        json!({"start_time":"1730702947","method":"PUT","path":"/items/9f86d081884c7d659a2feaa0c55ad015","response_code":409,"upstream_cluster":"items-v2","request_duration":7,"req_x_b3_traceid":"463ac35c9f6413ad","user_agent":"Go-http-client/1.1","resp_content_type":"application/json","route":"PUT /items/{id}"}),
    );
    let Classified::Access(record) = c.classify("1730702947 PUT / 409 - - - \"-\" - 100%") else {
        panic!("expected an access record");
    };
    assert_eq!(record.start_time_ms(), Some(1_730_702_947_000));
    // Built-ins still apply to other lines.
    assert!(matches!(
        c.classify(
            r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 - 1 2 3 - "-" "-" "-" "-" "-""#
        ),
        Classified::Access(_)
    ));
    // A line that does not fit the format is an application line.
    assert!(matches!(
        c.classify("1730702947 PUT / abc x 7 - \"-\" - 100%"),
        Classified::App(_)
    ));
}

#[test]
fn start_time_as_epoch_ms() {
    let c = Classifier::new();
    let Classified::Access(r) = c
        .classify(r#"[2018-04-03T23:06:09.123Z] "GET / HTTP/1.1" 0 - 1 2 3 - "-" "-" "-" "-" "-""#)
    else {
        panic!("expected access");
    };
    assert_eq!(r.start_time_ms(), Some(1522796769123));
    assert_eq!(r.str(Field::StartTime), Some("2018-04-03T23:06:09.123Z"));
}

#[test]
fn records_borrow_from_the_line() {
    let c = Classifier::new();
    let line = r#"[2018-04-03T23:06:09.123Z] "GET /a HTTP/1.1" 0 - 1 2 3 - "-" "ua" "-" "-" "-""#;
    let Classified::Access(mut r) = c.classify(line) else {
        panic!("expected access");
    };
    let range = line.as_bytes().as_ptr_range();
    for field in [Field::Path, Field::UserAgent, Field::StartTime] {
        match r.get(field) {
            Some(sluice_parser::Value::Str(std::borrow::Cow::Borrowed(s))) => {
                assert!(range.contains(&s.as_ptr()), "{field:?} is not borrowed")
            }
            other => panic!("{field:?}: {other:?}"),
        }
    }
    // Redaction that changes nothing allocates nothing.
    assert_eq!(Redactor::new(QueryMode::Redact).redact_record(&mut r), 0);
    assert!(matches!(
        r.get(Field::Path),
        Some(sluice_parser::Value::Str(std::borrow::Cow::Borrowed(_)))
    ));
}

#[test]
fn very_long_and_invalid_lines() {
    let c = Classifier::new();
    let long = format!("[{}", "x ".repeat(600_000));
    assert!(matches!(c.classify(&long), Classified::App(_)));
    let ua = "a\" \"".repeat(2000);
    let line = format!(
        r#"[2018-04-03T23:06:09.123Z] "GET / HTTP/1.1" 0 - 1 2 3 - "-" "{ua}" "-" "-" "-""#
    );
    // Heavily ambiguous: either answer is fine, but it must terminate.
    let _ = c.classify(&line);
    let bytes = b"[2018-04-03T23:06:09.123Z] \"GET / HTTP/1.1\" 0 - 1 2 3 - \"-\" \"caf\xe9\" \"-\" \"-\" \"-\"\n";
    let text = sluice_parser::decode_line(bytes);
    let Classified::Access(r) = c.classify(&text) else {
        panic!("expected access");
    };
    assert_eq!(r.str(Field::UserAgent), Some("caf\u{fffd}"));
}

#[test]
fn adjacent_operators() {
    let mut c = Classifier::new();
    c.add_format(
        Format::compile(
            "adjacent",
            "%RESPONSE_CODE%%RESPONSE_FLAGS% %REQ(X-A)%%DURATION%",
        )
        .unwrap(),
    );
    check_with(
        &c,
        "200UF hello7",
        json!({"response_code":200,"response_flags":"UF","duration":7,"req_x_a":"hello","route":"- -"}),
    );
    // Free text before another operator is found by backtracking, which the
    // step budget bounds: a megabyte of it is an application line, quickly.
    let long = format!("200UF {}x", "y".repeat(1 << 20));
    assert!(matches!(c.classify(&long), Classified::App(_)));
}

/// Inputs that once crashed a fuzz target (fuzz/), kept as regression tests.
#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("format_string-") {
            let text = String::from_utf8_lossy(&bytes);
            let (format, line) = text.split_once('\n').unwrap_or((&text, ""));
            if let Ok(format) = Format::compile("fuzz", format) {
                let _ = format.parse(line);
            }
        } else if name.starts_with("classify-") {
            let line = sluice_parser::decode_line(&bytes);
            let _ = Classifier::new().classify(&line);
        }
        seen += 1;
    }
    assert!(seen >= 1, "the regression inputs are present");
}
