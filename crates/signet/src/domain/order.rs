//! A signing order (the Automation API's workflow): its identifier, its life cycle
//! (PENDING → ACCEPTED | REJECTED | CANCELLED | EXPIRED), the signers' tasks with their priority
//! groups, and the rules that decide what a signature, a rejection or a new signer list does.

use std::fmt;
use std::str::FromStr;

use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// An order's identifier: the GUID the create call answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrderId(uuid::Uuid);

impl OrderId {
    pub fn new_random() -> Self {
        OrderId(uuid::Uuid::new_v4())
    }

    /// Parses a UUID in any of its usual spellings (the reference shows both cases).
    pub fn parse(raw: &str) -> Result<Self, String> {
        uuid::Uuid::try_parse(raw.trim())
            .map(OrderId)
            .map_err(|_| format!("{raw:?} is not an order id (a GUID)"))
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where an order is in its life; every state but PENDING is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderState {
    Pending,
    Accepted,
    Rejected,
    Cancelled,
    Expired,
}

/// A change the order's state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the order is {from}; only a PENDING order can be {action}")]
pub struct OrderTransitionError {
    pub from: OrderState,
    pub action: &'static str,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "PENDING",
            OrderState::Accepted => "ACCEPTED",
            OrderState::Rejected => "REJECTED",
            OrderState::Cancelled => "CANCELLED",
            OrderState::Expired => "EXPIRED",
        }
    }

    pub fn is_final(self) -> bool {
        self != OrderState::Pending
    }

    /// Only a PENDING order changes; `action` names what was tried, for the error.
    pub fn require_pending(self, action: &'static str) -> Result<(), OrderTransitionError> {
        if self.is_final() {
            Err(OrderTransitionError { from: self, action })
        } else {
            Ok(())
        }
    }

    pub fn cancel(self) -> Result<OrderState, OrderTransitionError> {
        self.require_pending("cancelled")
            .map(|()| OrderState::Cancelled)
    }

    pub fn expire(self) -> Result<OrderState, OrderTransitionError> {
        self.require_pending("expired")
            .map(|()| OrderState::Expired)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderState {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(match raw {
            "PENDING" => OrderState::Pending,
            "ACCEPTED" => OrderState::Accepted,
            "REJECTED" => OrderState::Rejected,
            "CANCELLED" => OrderState::Cancelled,
            "EXPIRED" => OrderState::Expired,
            other => return Err(format!("{other:?} is not an order state")),
        })
    }
}

/// A signer's task within an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Their group's turn: they may sign or reject now.
    Pending,
    /// A lower priority group has not finished yet.
    Queued,
    Signed,
    Rejected,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Queued => "QUEUED",
            TaskStatus::Signed => "SIGNED",
            TaskStatus::Rejected => "REJECTED",
        }
    }

    /// Signed or rejected: the signer has acted and must stay on the order.
    pub fn has_acted(self) -> bool {
        matches!(self, TaskStatus::Signed | TaskStatus::Rejected)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(match raw {
            "PENDING" => TaskStatus::Pending,
            "QUEUED" => TaskStatus::Queued,
            "SIGNED" => TaskStatus::Signed,
            "REJECTED" => TaskStatus::Rejected,
            other => return Err(format!("{other:?} is not a signer status")),
        })
    }
}

/// A priority group: 1 signs first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PriorityGroup(u16);

/// Groups beyond this are surely a mistake (and keep the number small in the database).
const MAX_PRIORITY_GROUP: u16 = 1000;

impl PriorityGroup {
    pub const FIRST: PriorityGroup = PriorityGroup(1);

    pub fn new(group: i64) -> Result<Self, String> {
        u16::try_from(group)
            .ok()
            .filter(|g| (1..=MAX_PRIORITY_GROUP).contains(g))
            .map(PriorityGroup)
            .ok_or_else(|| format!("priorityGroup must be 1..{MAX_PRIORITY_GROUP}, not {group}"))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// `linkType` (ref): 0 opens the order page, 1 goes straight to the signing step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    OrderPage,
    DirectSign,
}

impl LinkType {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "0" => Ok(LinkType::OrderPage),
            "1" => Ok(LinkType::DirectSign),
            other => Err(format!("linkType must be 0 or 1, not {other:?}")),
        }
    }

    pub fn as_i64(self) -> i64 {
        match self {
            LinkType::OrderPage => 0,
            LinkType::DirectSign => 1,
        }
    }

    pub fn from_i64(value: i64) -> Result<Self, String> {
        Self::parse(&value.to_string())
    }
}

/// The options Signet understands; any other name is refused so a typo does not pass silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderOption {
    /// Notify every signer at creation rather than group by group.
    NotifyAllSigners(bool),
    /// How this order's signers prove who they are (overrides the server's `signer_auth`).
    SignerAuthentication(SignerAuth),
}

/// How a signer proves who they are on the signing page: the link alone, or the link plus a
/// one-time code mailed to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignerAuth {
    #[default]
    Link,
    EmailOtp,
}

impl SignerAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            SignerAuth::Link => "link",
            SignerAuth::EmailOtp => "email-otp",
        }
    }
}

impl FromStr for SignerAuth {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "link" => Ok(SignerAuth::Link),
            "email-otp" => Ok(SignerAuth::EmailOtp),
            other => Err(format!(
                "signer authentication is \"link\" or \"email-otp\", not {other:?}"
            )),
        }
    }
}

impl OrderOption {
    /// Parses `{"name": ..., "value": ...}`. The reference's misspelling `notifiyAllSigners` is
    /// accepted too; booleans may come as JSON booleans or the strings "true"/"false".
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        let object = value
            .as_object()
            .ok_or("an option must be a JSON object {\"name\": ..., \"value\": ...}")?;
        let name = object
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or("an option needs a string \"name\"")?;
        let raw = object.get("value").unwrap_or(&serde_json::Value::Null);
        match name {
            "notifyAllSigners" | "notifiyAllSigners" => {
                let flag = match raw {
                    serde_json::Value::Bool(b) => *b,
                    serde_json::Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                    serde_json::Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                    other => return Err(format!("option {name} takes true or false, not {other}")),
                };
                Ok(OrderOption::NotifyAllSigners(flag))
            }
            "signerAuthentication" => match raw {
                serde_json::Value::String(value) => {
                    Ok(OrderOption::SignerAuthentication(value.parse()?))
                }
                other => Err(format!(
                    "option signerAuthentication takes \"link\" or \"email-otp\", not {other}"
                )),
            },
            other => Err(format!(
                "unknown option {other:?}; Signet understands notifyAllSigners and signerAuthentication"
            )),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            OrderOption::NotifyAllSigners(flag) => {
                serde_json::json!({"name": "notifyAllSigners", "value": flag})
            }
            OrderOption::SignerAuthentication(auth) => {
                serde_json::json!({"name": "signerAuthentication", "value": auth.as_str()})
            }
        }
    }
}

/// Parses a `dueDate`: the source's `YYYY-MM-DDThh:mm:ss` (read in UTC, Signet's time zone) or
/// RFC 3339 with an offset. It must lie after `now`.
pub fn parse_due_date(raw: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let raw = raw.trim();
    let local = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let due = match PrimitiveDateTime::parse(raw, &local) {
        Ok(naive) => naive.assume_offset(UtcOffset::UTC),
        Err(_) => OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                format!("dueDate {raw:?} is not YYYY-MM-DDThh:mm:ss (or RFC 3339 with an offset)")
            })?,
    };
    if due <= now {
        return Err(format!("dueDate {raw} is not in the future"));
    }
    Ok(due)
}

/// The default due date for an order created without one.
pub fn default_due_date(now: OffsetDateTime, days: u32) -> OffsetDateTime {
    now + Duration::days(i64::from(days))
}

/// One signer's place in the signing plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    pub group: PriorityGroup,
    pub status: TaskStatus,
}

/// What settling a plan decided for the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanOutcome {
    /// Some signers are still to act; the order stays PENDING.
    Open,
    /// Everyone signed.
    AllSigned,
    /// Someone rejected.
    Rejected,
}

/// Puts every task that has not acted into the right waiting status: the lowest group with an
/// open task is PENDING, every later group QUEUED (ref: a group starts when every earlier group
/// has signed). Says whether the order is done.
pub fn settle(tasks: &mut [Task]) -> PlanOutcome {
    if tasks.iter().any(|t| t.status == TaskStatus::Rejected) {
        return PlanOutcome::Rejected;
    }
    let current = tasks
        .iter()
        .filter(|t| !t.status.has_acted())
        .map(|t| t.group)
        .min();
    let Some(current) = current else {
        return PlanOutcome::AllSigned;
    };
    for task in tasks.iter_mut().filter(|t| !t.status.has_acted()) {
        task.status = if task.group == current {
            TaskStatus::Pending
        } else {
            TaskStatus::Queued
        };
    }
    PlanOutcome::Open
}

/// The group whose turn it is, if any signer still has to act.
pub fn current_group(tasks: &[Task]) -> Option<PriorityGroup> {
    tasks
        .iter()
        .filter(|t| !t.status.has_acted())
        .map(|t| t.group)
        .min()
}

/// Why a signer cannot act on an order now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    OrderClosed(#[from] OrderTransitionError),
    #[error("this signer has already {0}")]
    AlreadyActed(&'static str),
    #[error(
        "this signer's priority group has not started yet (an earlier group is still signing)"
    )]
    NotTheirTurn,
}

/// Checks that the task may act now (its order PENDING, its own status PENDING).
pub fn may_act(order: OrderState, task: TaskStatus) -> Result<(), SigningError> {
    order.require_pending("signed or rejected")?;
    match task {
        TaskStatus::Pending => Ok(()),
        TaskStatus::Queued => Err(SigningError::NotTheirTurn),
        TaskStatus::Signed => Err(SigningError::AlreadyActed("signed")),
        TaskStatus::Rejected => Err(SigningError::AlreadyActed("rejected")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn task(group: i64, status: TaskStatus) -> Task {
        Task {
            group: PriorityGroup::new(group).unwrap(),
            status,
        }
    }

    #[test]
    fn only_the_lowest_open_group_is_pending() {
        let mut tasks = [
            task(2, TaskStatus::Queued),
            task(1, TaskStatus::Queued),
            task(1, TaskStatus::Queued),
            task(3, TaskStatus::Pending),
        ];
        assert_eq!(settle(&mut tasks), PlanOutcome::Open);
        let statuses: Vec<_> = tasks.iter().map(|t| t.status).collect();
        use TaskStatus::*;
        assert_eq!(statuses, [Queued, Pending, Pending, Queued]);
    }

    #[test]
    fn the_next_group_starts_when_the_first_has_signed() {
        use TaskStatus::*;
        let mut tasks = [task(1, Signed), task(1, Signed), task(2, Queued)];
        assert_eq!(settle(&mut tasks), PlanOutcome::Open);
        assert_eq!(tasks[2].status, Pending);
        tasks[2].status = Signed;
        assert_eq!(settle(&mut tasks), PlanOutcome::AllSigned);
    }

    #[test]
    fn one_rejection_rejects_the_order() {
        use TaskStatus::*;
        let mut tasks = [task(1, Signed), task(2, Rejected), task(3, Queued)];
        assert_eq!(settle(&mut tasks), PlanOutcome::Rejected);
    }

    #[test]
    fn every_final_state_refuses_every_change() {
        for state in [
            OrderState::Accepted,
            OrderState::Rejected,
            OrderState::Cancelled,
            OrderState::Expired,
        ] {
            assert!(state.cancel().is_err());
            assert!(state.expire().is_err());
            assert!(may_act(state, TaskStatus::Pending).is_err());
        }
        assert_eq!(OrderState::Pending.cancel(), Ok(OrderState::Cancelled));
        assert_eq!(OrderState::Pending.expire(), Ok(OrderState::Expired));
    }

    #[test]
    fn queued_and_finished_signers_may_not_act() {
        assert_eq!(
            may_act(OrderState::Pending, TaskStatus::Queued),
            Err(SigningError::NotTheirTurn)
        );
        assert!(may_act(OrderState::Pending, TaskStatus::Signed).is_err());
        assert!(may_act(OrderState::Pending, TaskStatus::Rejected).is_err());
        assert!(may_act(OrderState::Pending, TaskStatus::Pending).is_ok());
    }

    #[test]
    fn due_dates_in_the_source_format_are_utc_and_must_be_in_the_future() {
        let now = time::macros::datetime!(2026-01-01 0:00 UTC);
        assert_eq!(
            parse_due_date("2026-12-24T00:00:00", now),
            Ok(time::macros::datetime!(2026-12-24 0:00 UTC))
        );
        assert_eq!(
            parse_due_date("2026-12-24T01:00:00+01:00", now),
            Ok(time::macros::datetime!(2026-12-24 0:00 UTC))
        );
        assert!(parse_due_date("2025-12-24T00:00:00", now).is_err());
        assert!(parse_due_date("24/12/2026", now).is_err());
        assert!(parse_due_date("2026-02-30T00:00:00", now).is_err());
    }

    #[test]
    fn options_are_known_or_refused() {
        let parse = |v: serde_json::Value| OrderOption::from_json(&v);
        assert_eq!(
            parse(serde_json::json!({"name": "notifyAllSigners", "value": true})),
            Ok(OrderOption::NotifyAllSigners(true))
        );
        assert_eq!(
            parse(serde_json::json!({"name": "notifiyAllSigners", "value": "false"})),
            Ok(OrderOption::NotifyAllSigners(false))
        );
        assert!(parse(serde_json::json!({"name": "colour", "value": 1})).is_err());
        assert!(parse(serde_json::json!("notifyAllSigners")).is_err());
    }

    #[test]
    fn signer_authentication_is_link_or_email_otp_and_round_trips() {
        let parse = |v: serde_json::Value| OrderOption::from_json(&v);
        for auth in [SignerAuth::Link, SignerAuth::EmailOtp] {
            let option = OrderOption::SignerAuthentication(auth);
            assert_eq!(parse(option.to_json()), Ok(option));
        }
        assert_eq!(
            parse(serde_json::json!({"name": "signerAuthentication", "value": "email-otp"})),
            Ok(OrderOption::SignerAuthentication(SignerAuth::EmailOtp))
        );
        assert!(
            parse(serde_json::json!({"name": "signerAuthentication", "value": "sms"})).is_err()
        );
        assert!(parse(serde_json::json!({"name": "signerAuthentication", "value": true})).is_err());
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [
            OrderState::Pending,
            OrderState::Accepted,
            OrderState::Rejected,
            OrderState::Cancelled,
            OrderState::Expired,
        ] {
            assert_eq!(state.as_str().parse::<OrderState>(), Ok(state));
        }
    }

    proptest! {
        /// Whatever the groups and progress, settling leaves exactly one group PENDING while the
        /// order is open, and that group is the lowest one with a signer still to act.
        #[test]
        fn settling_opens_exactly_the_lowest_unfinished_group(
            plan in proptest::collection::vec((1i64..5, proptest::bool::ANY), 1..12)
        ) {
            let mut tasks: Vec<Task> = plan
                .iter()
                .map(|(g, signed)| task(*g, if *signed { TaskStatus::Signed } else { TaskStatus::Queued }))
                .collect();
            let outcome = settle(&mut tasks);
            let open: Vec<_> = tasks.iter().filter(|t| !t.status.has_acted()).collect();
            if open.is_empty() {
                prop_assert_eq!(outcome, PlanOutcome::AllSigned);
            } else {
                prop_assert_eq!(outcome, PlanOutcome::Open);
                let lowest = open.iter().map(|t| t.group).min().unwrap();
                for t in open {
                    let expected = if t.group == lowest { TaskStatus::Pending } else { TaskStatus::Queued };
                    prop_assert_eq!(t.status, expected);
                }
            }
        }
    }
}
