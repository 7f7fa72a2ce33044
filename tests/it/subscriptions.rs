//! Subscriptions live no longer than their credentials, and are bounded per connection and
//! per user.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use justice_counts::auth::AuthConfig;
use justice_counts::auth::tokens::TokenKeys;
use justice_counts::limits::Limits;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{TestApp, TestDb, agency_id};

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const SIGN_IN: &str = "mutation { signIn(input: {email: \"sheriff.reader@example.com\", password: \"justice-counts-demo\"}) { accessToken } }";

async fn sign_in(app: &TestApp) -> String {
    let response = app.graphql(SIGN_IN, json!({})).await;
    response["data"]["signIn"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"))
        .to_owned()
}

/// Opens a connection and sends `connection_init` with the token; the first answer.
pub(crate) async fn connect(app: &TestApp, token: &str) -> (Socket, Message) {
    let mut request = format!("{}/graphql/ws", app.base_url.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket.send(Message::text(init.to_string())).await.unwrap();
    let first = next(&mut socket, Duration::from_secs(5)).await;
    (socket, first)
}

pub(crate) async fn next(socket: &mut Socket, within: Duration) -> Message {
    loop {
        let message = tokio::time::timeout(within, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

pub(crate) fn json_of(message: &Message) -> Value {
    match message {
        Message::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("not text: {other:?}"),
    }
}

async fn subscribe(socket: &mut Socket, id: &str, agency: &str) {
    let query = "subscription($a: ID!) { reportChanged(agencyId: $a) { kind } }";
    let message = json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": { "a": agency } } });
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The sheriff's reader, signed in, subscribed to the sheriff's report changes: the token
/// and the connection.
async fn subscribed(app: &TestApp, db: &TestDb) -> (String, Socket) {
    let sheriff = agency_id(app, db, "Sheriff").await;
    let token = sign_in(app).await;
    let (mut socket, ack) = connect(app, &token).await;
    assert_eq!(json_of(&ack)["type"], "connection_ack");
    subscribe(&mut socket, "1", &sheriff).await;
    (token, socket)
}

/// Waits for the server to close the connection; its close code and reason.
async fn closed(socket: &mut Socket, within: Duration) -> (u16, String) {
    loop {
        match next(socket, within).await {
            Message::Close(Some(frame)) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Message::Close(None) => return (u16::from(CloseCode::Normal), String::new()),
            Message::Text(text) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                assert_ne!(
                    message["type"], "next",
                    "an event after the credentials ended"
                );
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_closes_the_sessions_subscriptions() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let (token, mut socket) = subscribed(&app, &db).await;
    let signed_out = app
        .graphql_as(Some(&token), "mutation { signOut }", json!({}))
        .await;
    assert_eq!(signed_out["data"]["signOut"], true, "{signed_out}");
    let (code, reason) = closed(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(code, 4401);
    assert!(reason.contains("signed out"), "{reason}");
}

/// A connection holds the viewer it opened with: when the user's roles change (here by plain
/// SQL, as any writer could), it closes, and the client reconnects with its new rights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_the_users_roles_closes_their_connections() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let (_, mut socket) = subscribed(&app, &db).await;
    // Someone else's change leaves the connection open.
    crate::uploads::execute(
        &db,
        "UPDATE users SET name = name || '.' WHERE email = 'harbor.contributor@example.com'",
    )
    .await;
    crate::uploads::execute(
        &db,
        "DELETE FROM memberships WHERE user_id = \
         (SELECT id FROM users WHERE email = 'harbor.contributor@example.com')",
    )
    .await;
    let quiet = tokio::time::timeout(Duration::from_millis(1500), socket.next()).await;
    assert!(
        quiet.is_err(),
        "the connection stays open and quiet: {quiet:?}"
    );
    crate::uploads::execute(
        &db,
        "DELETE FROM memberships WHERE user_id = \
         (SELECT id FROM users WHERE email = 'sheriff.reader@example.com')",
    )
    .await;
    let (code, reason) = closed(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(code, 4401);
    assert!(reason.contains("access changed"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_when_its_access_token_expires() {
    let db = TestDb::with_demo().await;
    let mut auth = AuthConfig::new(TokenKeys::generate());
    auth.access_token_lifetime = chrono::Duration::seconds(4);
    let app = TestApp::spawn_with(&db, auth).await;
    let (_, mut socket) = subscribed(&app, &db).await;
    let (code, reason) = closed(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(code, 4401);
    assert!(reason.contains("expired"), "{reason}");
}

/// A token narrowed to expire sooner than it was issued for ends its subscriptions then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_when_its_narrowed_token_expires() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let token = sign_in(&app).await;
    let narrowed = justice_counts::auth::tokens::attenuate(
        &token,
        &justice_counts::auth::tokens::Restrictions {
            expires_at: Some(chrono::Utc::now() + chrono::Duration::seconds(4)),
            ..Default::default()
        },
    )
    .unwrap();
    let (mut socket, ack) = connect(&app, &narrowed).await;
    assert_eq!(json_of(&ack)["type"], "connection_ack");
    subscribe(&mut socket, "1", &sheriff).await;
    let (code, reason) = closed(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(code, 4401);
    assert!(reason.contains("expired"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_subscriptions_are_bounded() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            max_connections_per_user: 1,
            max_subscriptions_per_connection: 1,
            rate_limit_burst: 0,
            ..Limits::default()
        },
    )
    .await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let (mut first, ack) = connect(&app, &token).await;
    assert_eq!(json_of(&ack)["type"], "connection_ack");
    subscribe(&mut first, "1", &sheriff).await;
    subscribe(&mut first, "2", &sheriff).await;
    let refused = json_of(&next(&mut first, Duration::from_secs(5)).await);
    assert_eq!(refused["id"], "2", "{refused}");
    let error = if refused["type"] == "error" {
        refused["payload"][0].clone()
    } else {
        refused["payload"]["errors"][0].clone()
    };
    assert_eq!(error["extensions"]["code"], "RATE_LIMITED", "{refused}");

    let (mut second, answer) = connect(&app, &token).await;
    match answer {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4403);
            assert!(frame.reason.contains("at most 1"), "{}", frame.reason);
        }
        other => panic!("a second connection of one user was accepted: {other:?}"),
    }
    drop(second.close(None).await);
    drop(first.close(None).await);
    // Once the first connection is gone, its place is free again.
    let mut reopened = None;
    for _ in 0..50 {
        let (socket, answer) = connect(&app, &token).await;
        if let Message::Text(_) = answer {
            reopened = Some((socket, answer));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, answer) = reopened.expect("a connection once the first closed");
    assert_eq!(json_of(&answer)["type"], "connection_ack");
}

/// Each `subscribe` takes from the client address's rate and the user's, as a request does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_take_from_the_request_rates() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            max_subscriptions_per_connection: 50,
            rate_limit_burst: 5,
            rate_limit_per_second: 1,
            ..Limits::default()
        },
    )
    .await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let (mut socket, ack) = connect(&app, &token).await;
    assert_eq!(json_of(&ack)["type"], "connection_ack");
    for id in 1..=10 {
        subscribe(&mut socket, &id.to_string(), &sheriff).await;
    }
    let mut refused = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_millis(1500), socket.next()).await
    {
        if let Message::Text(text) = message {
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] == "complete" {
                continue;
            }
            assert_eq!(
                error_of(&message)["extensions"]["code"],
                "RATE_LIMITED",
                "{message}"
            );
            refused.push(message["id"].as_str().unwrap().parse::<u32>().unwrap());
        }
    }
    assert!(
        !refused.is_empty(),
        "ten subscriptions at once within a burst of five"
    );
    assert!(
        !refused.contains(&1),
        "the first is within the burst: {refused:?}"
    );
}

/// To an anonymous subscriber, an agency that is not public answers as a missing one does;
/// a public one asks for a sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_subscriber_cannot_tell_a_private_agency_from_a_missing_one() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let corrections = agency_id(&app, &db, "Community Corrections").await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let mut request = format!("{}/graphql/ws", app.base_url.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": {} });
    socket.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(
        json_of(&next(&mut socket, Duration::from_secs(5)).await)["type"],
        "connection_ack"
    );
    let mut codes = Vec::new();
    for (id, agency) in [
        ("1", corrections.as_str()),
        ("2", "999999"),
        ("3", sheriff.as_str()),
    ] {
        subscribe(&mut socket, id, agency).await;
        let answer = loop {
            let message = json_of(&next(&mut socket, Duration::from_secs(5)).await);
            if message["type"] != "complete" {
                break message;
            }
        };
        assert_eq!(answer["id"], id, "{answer}");
        codes.push(error_of(&answer)["extensions"]["code"].clone());
    }
    assert_eq!(
        codes,
        [
            json!("NOT_FOUND"),
            json!("NOT_FOUND"),
            json!("UNAUTHENTICATED")
        ]
    );
}

/// The error a refused `subscribe` is answered with.
fn error_of(message: &Value) -> Value {
    if message["type"] == "error" {
        message["payload"][0].clone()
    } else {
        message["payload"]["errors"][0].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_runs_subscriptions_only() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let token = sign_in(&app).await;
    let (mut socket, ack) = connect(&app, &token).await;
    assert_eq!(json_of(&ack)["type"], "connection_ack");
    let documents = [
        "{ __schema { types { name } } }".to_owned(),
        format!("query {{ agency(id: \"{sheriff}\") {{ name }} }}"),
        "mutation { signOut }".to_owned(),
        "subscription S { reportChanged(agencyId: \"1\") { kind } } query Q { __typename }"
            .to_owned(),
    ];
    for (index, query) in documents.iter().enumerate() {
        let id = format!("q{index}");
        let mut payload = json!({ "query": query });
        if index == 3 {
            payload["operationName"] = json!("Q");
        }
        let message = json!({ "id": id, "type": "subscribe", "payload": payload });
        socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        let mut answer = json_of(&next(&mut socket, Duration::from_secs(5)).await);
        // The end of the previous operation's stream.
        while answer["type"] == "complete" && answer["id"] != id.as_str() {
            answer = json_of(&next(&mut socket, Duration::from_secs(5)).await);
        }
        assert_eq!(answer["id"], id.as_str(), "{answer}");
        let error = error_of(&answer);
        assert_eq!(
            error["extensions"]["code"], "BAD_REQUEST",
            "{query}: {answer}"
        );
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("subscriptions only")),
            "{answer}"
        );
    }
    // The connection is still up and serves a subscription.
    subscribe(&mut socket, "s", &sheriff).await;
    socket
        .send(Message::text(json!({ "type": "ping" }).to_string()))
        .await
        .unwrap();
    let mut pong = json_of(&next(&mut socket, Duration::from_secs(5)).await);
    while pong["type"] == "complete" {
        pong = json_of(&next(&mut socket, Duration::from_secs(5)).await);
    }
    assert_eq!(pong["type"], "pong", "{pong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_initialises_is_closed() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            ws_init_timeout: Duration::from_millis(300),
            max_connections_per_user: 2,
            ..Limits::default()
        },
    )
    .await;
    let url = format!("{}/graphql/ws", app.base_url.replacen("http", "ws", 1));
    let open = || {
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request)
    };
    let (mut first, _) = open().await.unwrap();
    let (mut second, _) = open().await.unwrap();
    // A third from the same address while two wait for their init: refused at the upgrade.
    let third = open().await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
        }
        other => panic!(
            "a third waiting connection was accepted: {:?}",
            other.map(|_| ())
        ),
    }
    for socket in [&mut first, &mut second] {
        let (code, reason) = closed(socket, Duration::from_secs(5)).await;
        assert_eq!(code, 4408, "{reason}");
    }
    // Their places are free again.
    let mut reopened = false;
    for _ in 0..50 {
        if open().await.is_ok() {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "no connection once the waiting ones were closed");
}
