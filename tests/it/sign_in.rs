//! Signing in, renewing, signing out and accepting invitations, end to end over HTTP.

use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, error_codes};

const SIGN_IN: &str = "mutation($email: String!, $password: String!) {
    signIn(input: {email: $email, password: $password}) {
        accessToken accessTokenExpiresAt refreshToken refreshTokenExpiresAt user { email }
    }
}";
const RENEW: &str =
    "mutation($token: String!) { renewSession(refreshToken: $token) { accessToken refreshToken } }";
const ME: &str = "{ me { email memberships { role invitationStatus agency { name } } } }";

async fn sign_in(app: &TestApp, email: &str, password: &str) -> Value {
    app.graphql(SIGN_IN, json!({ "email": email, "password": password }))
        .await
}

#[tokio::test]
async fn a_user_signs_in_with_email_and_password() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let response = sign_in(&app, "Sheriff.Admin@Example.com", "justice-counts-demo").await;
    let session = &response["data"]["signIn"];
    assert_eq!(
        session["user"]["email"], "sheriff.admin@example.com",
        "{response}"
    );
    let token = session["accessToken"].as_str().unwrap();
    let me = app.graphql_as(Some(token), ME, json!({})).await;
    assert_eq!(
        me["data"]["me"]["memberships"][0]["agency"]["name"],
        "Pine County Sheriff's Office"
    );
    assert_eq!(me["data"]["me"]["memberships"][0]["role"], "AGENCY_ADMIN");
}

#[tokio::test]
async fn a_failed_sign_in_does_not_reveal_whether_the_email_exists() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let wrong_password = sign_in(&app, "sheriff.admin@example.com", "not the password").await;
    let unknown_email = sign_in(&app, "nobody@example.com", "justice-counts-demo").await;
    let no_password_yet = sign_in(&app, "invitee@example.com", "justice-counts-demo").await;
    for response in [&wrong_password, &unknown_email, &no_password_yet] {
        assert_eq!(error_codes(response), ["UNAUTHENTICATED"]);
        assert_eq!(
            response["errors"][0]["message"],
            wrong_password["errors"][0]["message"]
        );
    }
}

#[tokio::test]
async fn a_refresh_token_used_twice_revokes_its_whole_session() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let first = sign_in(&app, "sheriff.reader@example.com", "justice-counts-demo").await;
    let refresh = first["data"]["signIn"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let renewed = app.graphql(RENEW, json!({ "token": refresh })).await;
    let access = renewed["data"]["renewSession"]["accessToken"]
        .as_str()
        .expect("renewed")
        .to_owned();
    let next_refresh = renewed["data"]["renewSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(next_refresh, refresh);
    assert_eq!(
        app.graphql_as(Some(&access), ME, json!({})).await["data"]["me"]["email"],
        "sheriff.reader@example.com"
    );

    let reused = app.graphql(RENEW, json!({ "token": refresh })).await;
    assert_eq!(
        error_codes(&reused),
        ["UNAUTHENTICATED"],
        "a refresh token works once"
    );
    let message = reused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("revoked"), "{message}");
    // A second use means the token was copied: the whole session ends, for whoever holds it.
    assert_eq!(
        error_codes(&app.graphql(RENEW, json!({ "token": next_refresh })).await),
        ["UNAUTHENTICATED"],
        "the latest refresh token of a session whose old token was replayed"
    );
    assert_eq!(
        error_codes(&app.graphql_as(Some(&access), ME, json!({})).await),
        ["UNAUTHENTICATED"],
        "the access tokens of the revoked session"
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_and_its_tokens() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let session = sign_in(&app, "sheriff.reader@example.com", "justice-counts-demo").await;
    let refresh = session["data"]["signIn"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let access = session["data"]["signIn"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let renewed = app.graphql(RENEW, json!({ "token": refresh })).await;
    let second_access = renewed["data"]["renewSession"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_refresh = renewed["data"]["renewSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = app
        .graphql_as(Some(&second_access), "mutation { signOut }", json!({}))
        .await;
    assert_eq!(out["data"]["signOut"], true);
    for token in [&access, &second_access] {
        assert_eq!(
            error_codes(&app.graphql_as(Some(token), ME, json!({})).await),
            ["UNAUTHENTICATED"]
        );
    }
    assert_eq!(
        error_codes(&app.graphql(RENEW, json!({ "token": second_refresh })).await),
        ["UNAUTHENTICATED"]
    );
}

#[tokio::test]
async fn an_invited_user_joins_with_the_one_time_code() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let admin = sign_in(&app, "sheriff.admin@example.com", "justice-counts-demo").await;
    let admin = admin["data"]["signIn"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let agencies = app
        .graphql_as(
            Some(&admin),
            "{ me { memberships { agency { id } } } }",
            json!({}),
        )
        .await;
    let sheriff = agencies["data"]["me"]["memberships"][0]["agency"]["id"].clone();

    let invite = "mutation($a: ID!, $email: String!) {
        inviteMember(input: {agencyId: $a, email: $email, name: \"Robin New\", role: CONTRIBUTOR}) {
            invitationCode member { name email role invitationStatus }
        }
    }";
    let invited = app
        .graphql_as(
            Some(&admin),
            invite,
            json!({ "a": sheriff, "email": "robin@example.com" }),
        )
        .await;
    let payload = &invited["data"]["inviteMember"];
    assert_eq!(
        payload["member"]["invitationStatus"], "PENDING",
        "{invited}"
    );
    assert_eq!(payload["member"]["role"], "CONTRIBUTOR");
    let code = payload["invitationCode"].as_str().unwrap().to_owned();

    let again = app
        .graphql_as(
            Some(&admin),
            invite,
            json!({ "a": sheriff, "email": "ROBIN@example.com" }),
        )
        .await;
    assert_eq!(error_codes(&again), ["CONFLICT"], "{again}");
    assert_eq!(
        error_codes(&sign_in(&app, "robin@example.com", "whatever password").await),
        ["UNAUTHENTICATED"]
    );

    let accept = "mutation($code: String!, $password: String!) {
        acceptInvitation(input: {code: $code, password: $password}) { accessToken user { email } }
    }";
    let short = app
        .graphql(accept, json!({ "code": code, "password": "short" }))
        .await;
    assert_eq!(error_codes(&short), ["BAD_USER_INPUT"]);
    let accepted = app
        .graphql(
            accept,
            json!({ "code": code, "password": "robin's new password" }),
        )
        .await;
    let access = accepted["data"]["acceptInvitation"]["accessToken"]
        .as_str()
        .expect("accepted")
        .to_owned();
    let me = app.graphql_as(Some(&access), ME, json!({})).await;
    assert_eq!(
        me["data"]["me"]["memberships"][0]["invitationStatus"],
        "ACCEPTED"
    );
    assert_eq!(me["data"]["me"]["memberships"][0]["role"], "CONTRIBUTOR");

    let reused = app
        .graphql(
            accept,
            json!({ "code": code, "password": "robin's new password" }),
        )
        .await;
    assert_eq!(
        error_codes(&reused),
        ["BAD_USER_INPUT"],
        "the code works once"
    );
    assert!(sign_in(&app, "robin@example.com", "robin's new password").await["errors"].is_null());
}

#[tokio::test]
async fn a_pending_invitation_grants_nothing_yet() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    // invitee@example.com is invited to the sheriff's office but has not accepted.
    let token = app.token_for(&db, "invitee@example.com").await;
    let admin = app.token_for(&db, "admin@example.com").await;
    let sheriff = app
        .graphql_as(
            Some(&admin),
            "{ agencies(filter: {nameContains: \"Sheriff\"}) { nodes { id } } }",
            json!({}),
        )
        .await["data"]["agencies"]["nodes"][0]["id"]
        .clone();
    let team = app
        .graphql_as(
            Some(&token),
            "query($a: ID!) { agency(id: $a) { team { name } } }",
            json!({ "a": sheriff }),
        )
        .await;
    assert_eq!(error_codes(&team), ["FORBIDDEN"], "{team}");
    let me = app.graphql_as(Some(&token), ME, json!({})).await;
    assert_eq!(
        me["data"]["me"]["memberships"][0]["invitationStatus"],
        "PENDING"
    );
}

/// The admin of another agency holds the code of their own invitation: it must not choose
/// the password of someone another agency invited first.
#[tokio::test]
async fn only_the_invitation_that_created_an_account_chooses_its_password() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let first_agency = async |email: &str| {
        let token = app.token_for(&db, email).await;
        let me = app
            .graphql_as(
                Some(&token),
                "{ me { memberships { agency { id } } } }",
                json!({}),
            )
            .await;
        (
            token,
            me["data"]["me"]["memberships"][0]["agency"]["id"].clone(),
        )
    };
    let (sheriff_admin, sheriff) = first_agency("sheriff.admin@example.com").await;
    let (mesa_admin, mesa) = first_agency("mesa.admin@example.com").await;
    let invite = "mutation($a: ID!) {
        inviteMember(input: {agencyId: $a, email: \"sam@example.com\", name: \"Sam\", role: READ_ONLY}) {
            invitationCode
        }
    }";
    let code = async |token: &str, agency: &Value| {
        let invited = app
            .graphql_as(Some(token), invite, json!({ "a": agency }))
            .await;
        invited["data"]["inviteMember"]["invitationCode"]
            .as_str()
            .unwrap_or_else(|| panic!("{invited}"))
            .to_owned()
    };
    let creating = code(&sheriff_admin, &sheriff).await;
    let other = code(&mesa_admin, &mesa).await;
    let accept = "mutation($code: String!, $password: String!) {
        acceptInvitation(input: {code: $code, password: $password}) { accessToken }
    }";
    let taken = app
        .graphql(
            accept,
            json!({ "code": other, "password": "the other admin's choice" }),
        )
        .await;
    assert_eq!(error_codes(&taken), ["BAD_USER_INPUT"], "{taken}");
    assert_eq!(
        error_codes(&sign_in(&app, "sam@example.com", "the other admin's choice").await),
        ["UNAUTHENTICATED"]
    );
    let joined = app
        .graphql(
            accept,
            json!({ "code": creating, "password": "sam's own password" }),
        )
        .await;
    assert!(joined["errors"].is_null(), "{joined}");
    // Then the other invitation is accepted with the account's password.
    let joined = app
        .graphql(
            accept,
            json!({ "code": other, "password": "sam's own password" }),
        )
        .await;
    assert!(joined["errors"].is_null(), "{joined}");

    // Withdrawn before it was accepted, the creating invitation hands the choice to the
    // oldest one still standing.
    let invite = invite.replace("sam@example.com", "kim@example.com");
    let code_for = async |token: &str, agency: &Value| {
        let invited = app
            .graphql_as(Some(token), &invite, json!({ "a": agency }))
            .await;
        invited["data"]["inviteMember"]["invitationCode"]
            .as_str()
            .unwrap_or_else(|| panic!("{invited}"))
            .to_owned()
    };
    let _withdrawn = code_for(&sheriff_admin, &sheriff).await;
    let standing = code_for(&mesa_admin, &mesa).await;
    let team = app
        .graphql_as(
            Some(&sheriff_admin),
            "query($a: ID!) { agency(id: $a) { team { userId email } } }",
            json!({ "a": sheriff }),
        )
        .await;
    let kim = team["data"]["agency"]["team"]
        .as_array()
        .and_then(|team| {
            team.iter()
                .find(|member| member["email"] == "kim@example.com")
        })
        .map(|member| member["userId"].clone())
        .unwrap_or_else(|| panic!("{team}"));
    let removed = app
        .graphql_as(
            Some(&sheriff_admin),
            "mutation($a: ID!, $u: ID!) { removeMember(input: {agencyId: $a, userId: $u}) }",
            json!({ "a": sheriff, "u": kim }),
        )
        .await;
    assert!(removed["errors"].is_null(), "{removed}");
    let joined = app
        .graphql(
            accept,
            json!({ "code": standing, "password": "kim's own password" }),
        )
        .await;
    assert!(joined["errors"].is_null(), "{joined}");
}

/// Accepting an invitation spends its code only with the session it opens: when the session
/// cannot be opened, the code still works.
#[tokio::test]
async fn an_invitation_code_is_spent_only_with_its_session() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let admin = app.token_for(&db, "sheriff.admin@example.com").await;
    let sheriff = crate::support::agency_id(&app, &db, "Sheriff").await;
    let invited = app
        .graphql_as(
            Some(&admin),
            "mutation($a: ID!) { inviteMember(input: {agencyId: $a, email: \"lee@example.com\", name: \"Lee\", role: READ_ONLY}) { invitationCode } }",
            json!({ "a": sheriff }),
        )
        .await;
    let code = invited["data"]["inviteMember"]["invitationCode"]
        .as_str()
        .unwrap_or_else(|| panic!("{invited}"))
        .to_owned();
    crate::uploads::execute(
        &db,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'no sessions today'; END $$",
    )
    .await;
    crate::uploads::execute(
        &db,
        "CREATE TRIGGER refuse BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    .await;
    let accept = "mutation($code: String!) { acceptInvitation(input: {code: $code, password: \"lee's password\"}) { accessToken } }";
    let failed = app.graphql(accept, json!({ "code": code })).await;
    assert!(!error_codes(&failed).is_empty(), "{failed}");
    crate::uploads::execute(&db, "DROP TRIGGER refuse ON sessions").await;
    let accepted = app.graphql(accept, json!({ "code": code })).await;
    assert!(
        accepted["data"]["acceptInvitation"]["accessToken"].is_string(),
        "{accepted}"
    );
}
