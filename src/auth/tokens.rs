//! Biscuit access tokens, signed by an Ed25519 root key.
//!
//! The authority block names the user, the session it belongs to and its expiry:
//!
//! ```text
//! user(42); session(7); expires(2026-11-22T12:15:00Z);
//! check if time($t), $t < 2026-11-22T12:15:00Z;
//! ```
//!
//! Roles are not in the token: they are read from the database for every request, so a role
//! change takes effect at once. A holder can narrow a token offline by appending a block of
//! checks. For every decision the server provides these facts:
//!
//! - `operation("read")`, `operation("write")` or `operation("admin")`;
//! - `agency(<id>)` when an agency is concerned;
//! - `time(<now>)`.
//!
//! so that, for example, `check if operation("read")` makes a read-only token and
//! `reject if agency($a), ![3, 5].contains($a)` one limited to agencies 3 and 5.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use biscuit_auth::builder::{Algorithm, AuthorizerBuilder, BlockBuilder};
use biscuit_auth::macros::{biscuit, check, fact, policy};
use biscuit_auth::{AuthorizerLimits, Biscuit, KeyPair, PrivateKey, PublicKey, UnverifiedBiscuit};
use chrono::{DateTime, Utc};

use super::permissions::Operation;
use super::secrets;
use crate::error::{AppError, AppResult};
use crate::models::ids::{AgencyId, UserId};

/// Generous limits: the default (1 ms) is too tight for unoptimised builds.
fn limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_time: Duration::from_millis(200),
        ..AuthorizerLimits::default()
    }
}

/// Where the root key comes from.
#[derive(Debug, Clone, Default)]
pub struct KeySource {
    /// The private key in hex.
    pub hex: Option<String>,
    /// A file holding the private key in hex.
    pub file: Option<PathBuf>,
    /// Otherwise: the key file in this directory, generated on first use.
    pub data_dir: PathBuf,
}

/// Name of the generated key file in the data directory.
const KEY_FILE: &str = "token-root-key";

/// The root key pair that signs access tokens.
pub struct TokenKeys {
    root: KeyPair,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenKeys(public: {})",
            self.root.public().to_bytes_hex()
        )
    }
}

fn parse_private(hex: &str) -> anyhow::Result<KeyPair> {
    let key = PrivateKey::from_bytes_hex(hex.trim(), Algorithm::Ed25519).map_err(|error| {
        anyhow::anyhow!("the token root key is not an Ed25519 key in hex: {error}")
    })?;
    Ok(KeyPair::from(&key))
}

impl TokenKeys {
    /// A new random key pair.
    pub fn generate() -> Self {
        Self {
            root: KeyPair::new(),
        }
    }

    /// The key from configuration, or the data directory's key file (created on first use).
    pub fn load(source: &KeySource) -> anyhow::Result<Self> {
        if let Some(hex) = &source.hex {
            return Ok(Self {
                root: parse_private(hex)?,
            });
        }
        if let Some(file) = &source.file {
            let hex = fs::read_to_string(file).with_context(|| {
                format!("cannot read the token root key file {}", file.display())
            })?;
            return Ok(Self {
                root: parse_private(&hex)?,
            });
        }
        Self::load_or_create(&source.data_dir.join(KEY_FILE))
    }

    fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if let Ok(hex) = fs::read_to_string(path) {
            return Ok(Self {
                root: parse_private(&hex)?,
            });
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let keys = Self::generate();
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(mut file) => {
                file.write_all(keys.root.private().to_bytes_hex().as_bytes())?;
                tracing::info!(path = %path.display(), "generated the token root key");
                Ok(keys)
            }
            // Another process created it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(Self {
                root: parse_private(&fs::read_to_string(path)?)?,
            }),
            Err(error) => Err(error).with_context(|| format!("cannot write {}", path.display())),
        }
    }

    /// The public key that verifies tokens.
    pub fn public(&self) -> PublicKey {
        self.root.public()
    }

    /// A token for `user`, valid until `expires_at`, tied to `session` when given.
    pub fn issue(
        &self,
        user: UserId,
        session: Option<i64>,
        expires_at: DateTime<Utc>,
    ) -> AppResult<String> {
        let expires = to_system_time(expires_at);
        let user = i64::from(user.0);
        let mut builder =
            biscuit!(r#"user({user}); expires({expires}); check if time($t), $t < {expires};"#);
        if let Some(session) = session {
            builder = builder
                .fact(fact!("session({session})"))
                .map_err(token_error)?;
        }
        builder
            .build(&self.root)
            .and_then(|token| token.to_base64())
            .map_err(token_error)
    }

    /// Checks a presented token's signature and that it is still usable; returns what it says.
    pub fn verify(&self, token: &str) -> AppResult<VerifiedToken> {
        let unauthenticated = |message: &str| AppError::Unauthenticated(message.into());
        let biscuit = Biscuit::from_base64(token.trim(), self.public()).map_err(|_| {
            unauthenticated(
                "the access token is malformed, tampered with or not issued by this server",
            )
        })?;
        appended_blocks_are_plain_checks(&biscuit).map_err(|reason| {
            unauthenticated(&format!(
                "the access token has an appended block this server does not accept: {reason}"
            ))
        })?;
        let mut authorizer = AuthorizerBuilder::new()
            .set_limits(limits())
            .time()
            .build(&biscuit)
            .map_err(|_| unauthenticated("the access token cannot be read"))?;
        let users: Vec<(i64,)> = authorizer
            .query(rule("data($u) <- user($u)")?)
            .map_err(token_error)?;
        let sessions: Vec<(i64,)> = authorizer
            .query(rule("data($s) <- session($s)")?)
            .map_err(token_error)?;
        let expiries: Vec<(SystemTime,)> = authorizer
            .query(rule("data($e) <- expires($e)")?)
            .map_err(token_error)?;
        let (Some(&(user,)), Some(&(expires,))) = (users.first(), expiries.first()) else {
            return Err(unauthenticated("the access token does not name a user"));
        };
        let verified = VerifiedToken {
            user_id: UserId(
                i32::try_from(user)
                    .map_err(|_| unauthenticated("the access token names no valid user"))?,
            ),
            session_id: sessions.first().map(|&(session,)| session),
            expires_at: DateTime::<Utc>::from(expires),
            revocation_ids: biscuit
                .revocation_identifiers()
                .iter()
                .map(|id| secrets::hex(id))
                .collect(),
            biscuit: std::sync::Arc::new(biscuit),
            decisions: std::sync::Arc::default(),
        };
        // Usable for at least something now: not expired, by its own or an appended check.
        if !verified.evaluate(&[Operation::Read, Operation::Write, Operation::Admin], None) {
            return Err(unauthenticated(
                "the access token has expired; renew it or sign in again",
            ));
        }
        Ok(verified)
    }
}

/// The most blocks a holder may append to a token.
const MAX_APPENDED_BLOCKS: usize = 8;
/// The most checks in one appended block.
const MAX_CHECKS_PER_BLOCK: usize = 16;
/// The most alternatives (`or`) in one check.
const MAX_QUERIES_PER_CHECK: usize = 4;
/// The most predicates one alternative of a check joins.
const MAX_PREDICATES_PER_QUERY: usize = 4;
/// The most expressions in one alternative of a check.
const MAX_EXPRESSIONS_PER_QUERY: usize = 16;

/// The most operations (values and operators) in one alternative of a check.
const MAX_OPERATIONS_PER_QUERY: usize = 256;

/// Operations in an expression, those inside closures included.
fn operations(ops: &[biscuit_auth::builder::Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            biscuit_auth::builder::Op::Closure(_, inner) => 1 + operations(inner),
            _ => 1,
        })
        .sum()
}

/// Whether an expression holds a closure: `.any` and `.all` over a set evaluate their body
/// once per item, and nested they multiply, within one expression that biscuit's time limit
/// does not interrupt.
fn has_closure(ops: &[biscuit_auth::builder::Op]) -> bool {
    ops.iter()
        .any(|op| matches!(op, biscuit_auth::builder::Op::Closure(..)))
}

/// Whether every block after the authority block is one the server evaluates in bounded
/// time: checks only (no facts, no rules, no third-party signature, no scopes, no closures),
/// few of them, each joining few predicates with few operations.
///
/// Datalog evaluation time grows with the facts and rules a token brings: a block of a few
/// hundred facts and one rule joining them four ways asks for billions of combinations, and
/// biscuit's time limit is only looked at between rounds of evaluation. With checks alone,
/// the facts to join are the few the authority block and the server provide.
fn appended_blocks_are_plain_checks(biscuit: &Biscuit) -> Result<(), String> {
    let appended = biscuit.block_count().saturating_sub(1);
    if appended > MAX_APPENDED_BLOCKS {
        return Err(format!("more than {MAX_APPENDED_BLOCKS} appended blocks"));
    }
    for index in 1..=appended {
        if biscuit
            .block_external_key(index)
            .map_err(|_| "an unreadable block".to_owned())?
            .is_some()
        {
            return Err("a third-party block".into());
        }
        let source = biscuit
            .print_block_source(index)
            .map_err(|_| "an unreadable block".to_owned())?;
        let block = BlockBuilder::new()
            .code(&source)
            .map_err(|_| "an unreadable block".to_owned())?;
        if !block.facts.is_empty() || !block.rules.is_empty() {
            return Err("facts or rules (only checks may be appended)".into());
        }
        if block.checks.len() > MAX_CHECKS_PER_BLOCK {
            return Err(format!(
                "more than {MAX_CHECKS_PER_BLOCK} checks in a block"
            ));
        }
        for check in &block.checks {
            if check.queries.len() > MAX_QUERIES_PER_CHECK {
                return Err(format!(
                    "a check of more than {MAX_QUERIES_PER_CHECK} alternatives"
                ));
            }
            for query in &check.queries {
                if query.body.len() > MAX_PREDICATES_PER_QUERY
                    || query.expressions.len() > MAX_EXPRESSIONS_PER_QUERY
                {
                    return Err(format!(
                        "a check joining more than {MAX_PREDICATES_PER_QUERY} predicates or \
                         with more than {MAX_EXPRESSIONS_PER_QUERY} expressions"
                    ));
                }
                if !query.scopes.is_empty() {
                    return Err("a check that trusts other blocks".into());
                }
                let operations: usize = query.expressions.iter().map(|e| operations(&e.ops)).sum();
                if operations > MAX_OPERATIONS_PER_QUERY {
                    return Err(format!(
                        "a check of more than {MAX_OPERATIONS_PER_QUERY} operations"
                    ));
                }
                if query.expressions.iter().any(|e| has_closure(&e.ops)) {
                    return Err("a check with closures (`.any`, `.all`)".into());
                }
            }
        }
    }
    Ok(())
}

fn rule(text: &str) -> AppResult<biscuit_auth::builder::Rule> {
    text.try_into().map_err(token_error)
}

fn token_error(error: impl std::fmt::Display) -> AppError {
    AppError::internal(anyhow::anyhow!("token processing failed: {error}"))
}

fn to_system_time(at: DateTime<Utc>) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).unwrap_or(0))
}

/// A token whose signature checked out.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The user it was issued to.
    pub user_id: UserId,
    /// The session it belongs to (none for tokens issued from the command line).
    pub session_id: Option<i64>,
    /// When the authority block expires.
    pub expires_at: DateTime<Utc>,
    /// Revocation identifiers of its blocks, in hex.
    pub revocation_ids: Vec<String>,
    biscuit: std::sync::Arc<Biscuit>,
    /// Decisions made in the current second, shared by every copy of the token (the credential
    /// cache hands out copies).
    decisions: std::sync::Arc<std::sync::Mutex<Decisions>>,
}

/// The most decisions remembered for one token within one second.
const MAX_DECISIONS: usize = 64;

/// The token's decisions within one second of time.
///
/// A decision depends on the token, the facts given and the time, and the time fact has a
/// resolution of one second: within the same second the same question has the same answer, so
/// it is worked out once however many requests ask it.
#[derive(Debug, Default)]
struct Decisions {
    second: u64,
    allowed: HashMap<(Operation, Option<AgencyId>), bool>,
}

impl VerifiedToken {
    /// When the token stops allowing reads: the authority's expiry, or an earlier one a
    /// narrowing block set. Found by bisection over the seconds until the authority's expiry
    /// (a check on the time only ever turns from allowing to refusing), a few dozen
    /// evaluations at most.
    pub fn reads_until(&self) -> DateTime<Utc> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let end = u64::try_from(self.expires_at.timestamp()).unwrap_or(0);
        let reads = |second: u64| self.evaluate_at(&[Operation::Read], None, second);
        // The first second in [now, end] that does not read; `end` when all of them do.
        let (mut low, mut high) = (now, end.max(now));
        if !reads(low) {
            high = low;
        }
        while low < high {
            let middle = low + (high - low) / 2;
            if reads(middle) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        DateTime::from_timestamp(i64::try_from(high).unwrap_or(i64::MAX), 0)
            .unwrap_or(self.expires_at)
            .min(self.expires_at)
    }

    /// Whether the token's checks allow `operation` on `agency` now.
    pub fn allows(&self, operation: Operation, agency: Option<AgencyId>) -> bool {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let key = (operation, agency);
        if let Ok(decisions) = self.decisions.lock()
            && decisions.second == second
            && let Some(&allowed) = decisions.allowed.get(&key)
        {
            return allowed;
        }
        let allowed = self.evaluate_at(&[operation], agency, second);
        if let Ok(mut decisions) = self.decisions.lock() {
            if decisions.second != second {
                decisions.second = second;
                decisions.allowed.clear();
            }
            if decisions.allowed.len() < MAX_DECISIONS {
                decisions.allowed.insert(key, allowed);
            }
        }
        allowed
    }

    fn evaluate(&self, operations: &[Operation], agency: Option<AgencyId>) -> bool {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.evaluate_at(operations, agency, second)
    }

    /// The decision with `time(<second>)` as the time fact.
    fn evaluate_at(&self, operations: &[Operation], agency: Option<AgencyId>, second: u64) -> bool {
        let run = || -> Result<(), biscuit_auth::error::Token> {
            let now = UNIX_EPOCH + Duration::from_secs(second);
            let mut builder = AuthorizerBuilder::new()
                .set_limits(limits())
                .fact(fact!("time({now})"))?;
            for operation in operations {
                let name = operation.as_str();
                builder = builder.fact(fact!("operation({name})"))?;
            }
            if let Some(agency) = agency {
                let agency = i64::from(agency.0);
                builder = builder.fact(fact!("agency({agency})"))?;
            }
            let mut authorizer = builder
                .policy(policy!("allow if user($u)"))?
                .build(&self.biscuit)?;
            authorizer.authorize().map(drop)
        };
        run().is_ok()
    }
}

/// How a token is narrowed.
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
    /// Only reads.
    pub read_only: bool,
    /// Only these agencies (when any is concerned).
    pub agencies: Vec<AgencyId>,
    /// An earlier expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Appends a block of checks to a token. Needs no key: anyone holding a token may narrow it.
pub fn attenuate(token: &str, restrictions: &Restrictions) -> anyhow::Result<String> {
    let unverified = UnverifiedBiscuit::from_base64(token.trim())
        .map_err(|error| anyhow::anyhow!("not a biscuit token: {error}"))?;
    let mut block = BlockBuilder::new();
    if restrictions.read_only {
        block = block.check(check!(r#"check if operation("read")"#))?;
    }
    if !restrictions.agencies.is_empty() {
        let list: Vec<String> = restrictions
            .agencies
            .iter()
            .map(ToString::to_string)
            .collect();
        block = block.code(format!(
            "reject if agency($a), ![{}].contains($a);",
            list.join(", ")
        ))?;
    }
    if let Some(expires_at) = restrictions.expires_at {
        let expires = to_system_time(expires_at);
        block = block.check(check!("check if time($t), $t < {expires}"))?;
    }
    Ok(unverified.append(block)?.to_base64()?)
}

/// The Datalog of every block of a token, after checking its signature.
pub fn describe(token: &str, keys: &TokenKeys) -> anyhow::Result<String> {
    let biscuit = Biscuit::from_base64(token.trim(), keys.public()).map_err(|error| {
        anyhow::anyhow!("the token does not verify with this server's key: {error}")
    })?;
    let mut text = String::new();
    for index in 0..biscuit.block_count() {
        let title = if index == 0 {
            "authority".to_owned()
        } else {
            format!("block {index}")
        };
        let source = biscuit.print_block_source(index)?;
        text.push_str(&format!("// {title}\n{}\n", source.trim_end()));
    }
    Ok(text)
}

/// [`parse_duration`], refusing durations under `minimum`: a time limit of zero would refuse
/// everything, a poll of zero would spin.
pub fn parse_duration_of_at_least(text: &str, minimum: Duration) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration < minimum {
        return Err(format!(
            "{text:?} is shorter than {}ms",
            minimum.as_millis()
        ));
    }
    Ok(duration)
}

/// Parses a duration such as `500ms`, `90s`, `15m`, `1h` or `7d` (at most ten years).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const MAX_MILLIS: u64 = 10 * 366 * 86_400_000;
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 15m"))?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: use ms, s, m, h or d as the unit")),
    };
    number
        .checked_mul(millis_per_unit)
        .filter(|&millis| millis <= MAX_MILLIS)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is longer than ten years"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_minutes(minutes: i64) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::minutes(minutes)
    }

    #[test]
    fn a_token_names_its_user_and_session() {
        let keys = TokenKeys::generate();
        let token = keys.issue(UserId(7), Some(3), in_minutes(5)).unwrap();
        let verified = keys.verify(&token).unwrap();
        assert_eq!(verified.user_id, UserId(7));
        assert_eq!(verified.session_id, Some(3));
        assert!(verified.allows(Operation::Admin, Some(AgencyId(1))));
        assert_eq!(verified.revocation_ids.len(), 1);
    }

    #[test]
    fn a_token_reads_until_its_earliest_expiry() {
        let keys = TokenKeys::generate();
        let token = keys.issue(UserId(7), None, in_minutes(60)).unwrap();
        let verified = keys.verify(&token).unwrap();
        assert_eq!(verified.reads_until(), verified.expires_at);
        let sooner = in_minutes(10);
        let narrowed = attenuate(
            &token,
            &Restrictions {
                expires_at: Some(sooner),
                ..Restrictions::default()
            },
        )
        .unwrap();
        let verified = keys.verify(&narrowed).unwrap();
        let until = verified.reads_until();
        assert!(
            (until - sooner).num_seconds().abs() <= 1,
            "{until} against {sooner}"
        );
        assert!(until < verified.expires_at);
    }

    #[test]
    fn attenuated_tokens_allow_less() {
        let keys = TokenKeys::generate();
        let token = keys.issue(UserId(7), None, in_minutes(5)).unwrap();
        let narrowed = attenuate(
            &token,
            &Restrictions {
                read_only: true,
                agencies: vec![AgencyId(3)],
                expires_at: None,
            },
        )
        .unwrap();
        let verified = keys.verify(&narrowed).unwrap();
        assert!(verified.allows(Operation::Read, Some(AgencyId(3))));
        assert!(verified.allows(Operation::Read, None));
        assert!(!verified.allows(Operation::Read, Some(AgencyId(4))));
        assert!(!verified.allows(Operation::Write, Some(AgencyId(3))));
        assert_eq!(verified.revocation_ids.len(), 2);
        let text = describe(&narrowed, &keys).unwrap();
        assert!(
            text.contains("user(7)") && text.contains("operation(\"read\")"),
            "{text}"
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = TokenKeys::generate();
        let old = keys.issue(UserId(7), None, in_minutes(-1)).unwrap();
        assert!(keys.verify(&old).is_err());
        let token = keys.issue(UserId(7), None, in_minutes(5)).unwrap();
        let shortened = attenuate(
            &token,
            &Restrictions {
                expires_at: Some(in_minutes(-1)),
                ..Restrictions::default()
            },
        )
        .unwrap();
        let error = keys.verify(&shortened).unwrap_err();
        assert!(error.to_string().contains("expired"), "{error}");
    }

    #[test]
    fn decisions_follow_the_second_of_the_time_fact() {
        let keys = TokenKeys::generate();
        let token = keys.issue(UserId(7), None, in_minutes(5)).unwrap();
        let ends = Utc::now() + chrono::Duration::seconds(30);
        let narrowed = attenuate(
            &token,
            &Restrictions {
                expires_at: Some(ends),
                ..Restrictions::default()
            },
        )
        .unwrap();
        let verified = keys.verify(&narrowed).unwrap();
        let last = u64::try_from(ends.timestamp()).unwrap() - 1;
        assert!(verified.evaluate_at(&[Operation::Read], None, last));
        assert!(!verified.evaluate_at(&[Operation::Read], None, last + 1));
    }

    #[test]
    fn copies_of_a_token_share_its_decisions_of_the_second() {
        let keys = TokenKeys::generate();
        let token = keys.issue(UserId(7), None, in_minutes(5)).unwrap();
        let verified = keys.verify(&token).unwrap();
        let copy = verified.clone();
        assert!(verified.allows(Operation::Write, Some(AgencyId(3))));
        let decisions = copy.decisions.lock().unwrap();
        assert_eq!(
            decisions
                .allowed
                .get(&(Operation::Write, Some(AgencyId(3)))),
            Some(&true)
        );
        drop(decisions);
        for agency in 0..MAX_DECISIONS as i32 * 2 {
            copy.allows(Operation::Read, Some(AgencyId(agency)));
        }
        assert!(verified.decisions.lock().unwrap().allowed.len() <= MAX_DECISIONS);
    }

    #[test]
    fn appended_facts_rules_and_large_checks_are_refused() {
        let keys = TokenKeys::generate();
        let token = keys.issue(UserId(7), None, in_minutes(5)).unwrap();
        let append = |code: &str| {
            let unverified = UnverifiedBiscuit::from_base64(&token).unwrap();
            let block = BlockBuilder::new().code(code).unwrap();
            unverified.append(block).unwrap().to_base64().unwrap()
        };
        let mut facts: String = (0..500).map(|n| format!("f({n});")).collect();
        facts.push_str("g(1) <- f($a), f($b), f($c), f($d), $a + $b + $c + $d == -1;");
        for refused in [
            facts.as_str(),
            "f(1);",
            "g($u) <- user($u);",
            "check if user($u), user($v), user($w), user($x), user($y);",
            "check if user($u) trusting previous;",
            "check if [1, 2, 3].any($a -> [1, 2, 3].any($b -> false));",
        ] {
            let error = keys.verify(&append(refused)).unwrap_err();
            assert!(
                error.to_string().contains("does not accept"),
                "{refused}: {error}"
            );
        }
        let accepted =
            append(r#"check if operation("read"); reject if agency($a), ![3].contains($a);"#);
        assert!(keys.verify(&accepted).is_ok());
        let mut many = token.clone();
        for _ in 0..=MAX_APPENDED_BLOCKS {
            let unverified = UnverifiedBiscuit::from_base64(&many).unwrap();
            let block = BlockBuilder::new()
                .code(r#"check if operation("read");"#)
                .unwrap();
            many = unverified.append(block).unwrap().to_base64().unwrap();
        }
        assert!(keys.verify(&many).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("99999999999999999d").is_err(), "no overflow");
        assert!(parse_duration("4000d").is_err(), "longer than ten years");
    }
}
