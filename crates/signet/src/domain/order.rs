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

/// Why the order's rules refuse a change. `Display` is the message the API answers with (as
/// ILLEGAL_OPERATION_ERROR), so each variant words what the client may do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRefusal {
    /// The order has ended: only a PENDING order changes.
    #[error(transparent)]
    Closed(#[from] OrderTransitionError),
    /// The signer cannot sign or reject now.
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error("the document cannot be replaced once someone has signed it")]
    DocumentAlreadySigned,
    #[error("an order needs at least one signer")]
    NoSigners,
    /// Whoever signed or rejected is part of the record and stays on the order.
    #[error("signer {identifier} has {} and cannot be removed", status.as_str().to_ascii_lowercase())]
    ActedSignerRemoved {
        identifier: String,
        status: TaskStatus,
    },
    /// New signers may join the group signing now or a later one, never an earlier one: that
    /// group's turn has passed.
    #[error("priorityGroup {} precedes group {} that is signing now", group.get(), current.get())]
    PrecedesCurrentGroup {
        group: PriorityGroup,
        current: PriorityGroup,
    },
    /// Anonymizing waits until the person's orders are finished.
    #[error("the user has PENDING orders: cancel or delete them first")]
    PersonHasPendingOrders,
}

impl PlanOutcome {
    /// The final state the order moves into after settling, if the plan has ended it.
    pub fn final_state(self) -> Option<OrderState> {
        match self {
            PlanOutcome::Open => None,
            PlanOutcome::AllSigned => Some(OrderState::Accepted),
            PlanOutcome::Rejected => Some(OrderState::Rejected),
        }
    }
}

/// What a change to an order's metadata, document or state asks for (the rule-relevant part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateRequest {
    pub new_document: bool,
    pub cancel: bool,
}

/// What the store does for an allowed update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdatePlan {
    pub replace_document: bool,
    /// The final state to move into (CANCELLED when asked to cancel).
    pub finish: Option<OrderState>,
}

/// Decides an update: only a PENDING order changes, and its document only while nobody has
/// signed it (a signature covers the bytes it signed).
pub fn plan_update(
    state: OrderState,
    signatures: u32,
    request: UpdateRequest,
) -> Result<UpdatePlan, OrderRefusal> {
    state.require_pending("changed")?;
    if request.new_document && signatures > 0 {
        return Err(OrderRefusal::DocumentAlreadySigned);
    }
    let finish = if request.cancel {
        Some(state.cancel()?)
    } else {
        None
    };
    Ok(UpdatePlan {
        replace_document: request.new_document,
        finish,
    })
}

/// Whether a signature built on `based_on_revision` lands on the order as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Apply,
    /// Another signature landed first: sign again on the new revision.
    Stale,
}

/// Decides a signature: the signer must be allowed to act (that comes first, so a signer who may
/// not act is told so rather than asked to retry), and it must be built on the current revision.
pub fn check_signature(
    state: OrderState,
    task: TaskStatus,
    revision: i64,
    based_on_revision: i64,
) -> Result<SignatureCheck, OrderRefusal> {
    may_act(state, task)?;
    Ok(if revision == based_on_revision {
        SignatureCheck::Apply
    } else {
        SignatureCheck::Stale
    })
}

/// Decides a rejection: one signer's rejection ends the order REJECTED.
pub fn plan_rejection(state: OrderState, task: TaskStatus) -> Result<OrderState, OrderRefusal> {
    may_act(state, task)?;
    Ok(OrderState::Rejected)
}

/// Who a task belongs to, as both a request (after the directory lookup) and the store can say
/// it: the source and the person's id in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PersonKey {
    pub source: crate::domain::PersonSource,
    pub user_id: String,
}

/// A task of the order as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentTask {
    pub position: i64,
    pub person: PersonKey,
    /// As the order shows it, for the refusal message.
    pub identifier: String,
    pub task: Task,
}

/// A signer the new list names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedSigner {
    pub person: PersonKey,
    pub group: PriorityGroup,
}

/// How to turn the present tasks into the requested list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerPlan {
    /// Positions of the tasks to delete; none of them has acted.
    pub remove: Vec<i64>,
    /// Kept tasks that have not acted, with the group the request gives them.
    pub regroup: Vec<(i64, PriorityGroup)>,
    /// New tasks: their position (after every present one) and their index in the request.
    pub add: Vec<(i64, usize)>,
    /// Every task afterwards, by position, before settling (new ones QUEUED).
    pub after: Vec<(i64, Task)>,
}

/// Decides a new signer list for a PENDING order. Requested signers are matched to present tasks
/// by person; a present task the list leaves out is removed, unless its signer has acted (those
/// stay: their signature or rejection is in the record). Signers yet to act, new or kept, may not
/// be put before the group whose turn it is.
pub fn plan_signers(
    state: OrderState,
    current: &[CurrentTask],
    requested: &[RequestedSigner],
) -> Result<SignerPlan, OrderRefusal> {
    state.require_pending("changed")?;
    if requested.is_empty() {
        return Err(OrderRefusal::NoSigners);
    }
    let mut present: Vec<&CurrentTask> = current.iter().collect();
    present.sort_by_key(|t| t.position);
    let mut kept: Vec<(&CurrentTask, &RequestedSigner)> = Vec::new();
    let mut added: Vec<usize> = Vec::new();
    for (index, signer) in requested.iter().enumerate() {
        match present.iter().position(|t| t.person == signer.person) {
            Some(found) => kept.push((present.remove(found), signer)),
            None => added.push(index),
        }
    }
    if let Some(acted) = present.iter().find(|t| t.task.status.has_acted()) {
        return Err(OrderRefusal::ActedSignerRemoved {
            identifier: acted.identifier.clone(),
            status: acted.task.status,
        });
    }
    let before: Vec<Task> = current.iter().map(|t| t.task).collect();
    if let Some(current_group) = current_group(&before) {
        let waiting = added.iter().map(|&i| requested[i].group).chain(
            kept.iter()
                .filter(|(t, _)| !t.task.status.has_acted())
                .map(|(_, s)| s.group),
        );
        for group in waiting {
            if group < current_group {
                return Err(OrderRefusal::PrecedesCurrentGroup {
                    group,
                    current: current_group,
                });
            }
        }
    }
    let first_new = current.iter().map(|t| t.position).max().unwrap_or(-1) + 1;
    let add: Vec<(i64, usize)> = (first_new..).zip(added).collect();
    let regroup: Vec<(i64, PriorityGroup)> = kept
        .iter()
        .filter(|(t, _)| !t.task.status.has_acted())
        .map(|(t, s)| (t.position, s.group))
        .collect();
    let mut after: Vec<(i64, Task)> = kept
        .iter()
        .map(|(t, s)| {
            let group = if t.task.status.has_acted() {
                t.task.group
            } else {
                s.group
            };
            (
                t.position,
                Task {
                    group,
                    status: t.task.status,
                },
            )
        })
        .chain(add.iter().map(|&(position, index)| {
            (
                position,
                Task {
                    group: requested[index].group,
                    status: TaskStatus::Queued,
                },
            )
        }))
        .collect();
    after.sort_by_key(|(position, _)| *position);
    Ok(SignerPlan {
        remove: present.iter().map(|t| t.position).collect(),
        regroup,
        add,
        after,
    })
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

    fn key(id: u8) -> PersonKey {
        PersonKey {
            source: crate::domain::PersonSource::External,
            user_id: format!("person-{id}"),
        }
    }

    /// A PENDING order's tasks as the store would hold them: people 0.., settled.
    fn settled_order(plan: &[(i64, bool)]) -> Vec<CurrentTask> {
        let mut tasks: Vec<Task> = plan
            .iter()
            .map(|(g, signed)| {
                task(
                    *g,
                    if *signed {
                        TaskStatus::Signed
                    } else {
                        TaskStatus::Queued
                    },
                )
            })
            .collect();
        settle(&mut tasks);
        tasks
            .into_iter()
            .enumerate()
            .map(|(i, task)| CurrentTask {
                position: i as i64,
                person: key(i as u8),
                identifier: format!("identifier-{i}"),
                task,
            })
            .collect()
    }

    fn requested(list: &[(u8, i64)]) -> Vec<RequestedSigner> {
        // One person, one task: the service refuses a list naming someone twice.
        let mut seen = std::collections::HashSet::new();
        list.iter()
            .filter(|(id, _)| seen.insert(*id))
            .map(|(id, g)| RequestedSigner {
                person: key(*id),
                group: PriorityGroup::new(*g).unwrap(),
            })
            .collect()
    }

    #[test]
    fn a_signer_who_signed_cannot_be_removed_and_the_message_names_them() {
        let current = settled_order(&[(1, true), (1, false)]);
        let refusal =
            plan_signers(OrderState::Pending, &current, &requested(&[(1, 1), (7, 1)])).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "signer identifier-0 has signed and cannot be removed"
        );
    }

    #[test]
    fn a_new_signer_may_not_precede_the_group_signing_now() {
        let current = settled_order(&[(1, true), (2, false)]);
        let refusal = plan_signers(
            OrderState::Pending,
            &current,
            &requested(&[(0, 1), (1, 2), (7, 1)]),
        )
        .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "priorityGroup 1 precedes group 2 that is signing now"
        );
    }

    #[test]
    fn replacing_the_waiting_signers_keeps_the_signed_one_and_appends_the_new() {
        let current = settled_order(&[(1, true), (2, false)]);
        let plan = plan_signers(
            OrderState::Pending,
            &current,
            &requested(&[(0, 1), (7, 3), (8, 2)]),
        )
        .unwrap();
        assert_eq!(plan.remove, [1]);
        assert!(plan.regroup.is_empty());
        assert_eq!(plan.add, [(2, 1), (3, 2)]);
        assert_eq!(plan.after.len(), 3);
    }

    #[test]
    fn the_document_is_fixed_once_signed_and_every_change_needs_a_pending_order() {
        let new_document = UpdateRequest {
            new_document: true,
            cancel: false,
        };
        assert_eq!(
            plan_update(OrderState::Pending, 1, new_document),
            Err(OrderRefusal::DocumentAlreadySigned)
        );
        assert_eq!(
            plan_update(OrderState::Pending, 0, new_document).map(|p| p.replace_document),
            Ok(true)
        );
        let refusal = plan_update(OrderState::Accepted, 0, UpdateRequest::default()).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "the order is ACCEPTED; only a PENDING order can be changed"
        );
        assert_eq!(
            plan_signers(OrderState::Pending, &settled_order(&[(1, false)]), &[]),
            Err(OrderRefusal::NoSigners)
        );
    }

    #[test]
    fn a_signature_on_an_old_revision_is_stale_but_a_refusal_comes_first() {
        assert_eq!(
            check_signature(OrderState::Pending, TaskStatus::Pending, 2, 1),
            Ok(SignatureCheck::Stale)
        );
        assert_eq!(
            check_signature(OrderState::Pending, TaskStatus::Pending, 2, 2),
            Ok(SignatureCheck::Apply)
        );
        assert_eq!(
            check_signature(OrderState::Pending, TaskStatus::Signed, 2, 1),
            Err(OrderRefusal::Signing(SigningError::AlreadyActed("signed")))
        );
        assert_eq!(
            plan_rejection(OrderState::Pending, TaskStatus::Pending),
            Ok(OrderState::Rejected)
        );
        assert!(plan_rejection(OrderState::Cancelled, TaskStatus::Pending).is_err());
    }

    fn any_state() -> impl Strategy<Value = OrderState> {
        prop_oneof![
            Just(OrderState::Pending),
            Just(OrderState::Accepted),
            Just(OrderState::Rejected),
            Just(OrderState::Cancelled),
            Just(OrderState::Expired),
        ]
    }

    proptest! {
        /// Whatever the order and the new list, an allowed plan keeps every signer who acted
        /// (same position, group and status), removes only signers who have not, names every
        /// requested signer exactly once, and puts no waiting signer before the group whose
        /// turn it is. Settling afterwards opens a group no earlier than that one.
        #[test]
        fn a_signer_plan_keeps_the_record_and_the_turn(
            order in proptest::collection::vec((1i64..5, proptest::bool::ANY), 1..8),
            list in proptest::collection::vec((0u8..12, 1i64..5), 0..10),
        ) {
            let current = settled_order(&order);
            let requested = requested(&list);
            let before: Vec<Task> = current.iter().map(|t| t.task).collect();
            let turn = current_group(&before);
            let Ok(plan) = plan_signers(OrderState::Pending, &current, &requested) else {
                return Ok(());
            };
            for acted in current.iter().filter(|t| t.task.status.has_acted()) {
                prop_assert!(!plan.remove.contains(&acted.position));
                prop_assert!(plan.after.contains(&(acted.position, acted.task)));
            }
            for removed in &plan.remove {
                let task = current.iter().find(|t| t.position == *removed).unwrap();
                prop_assert!(!task.task.status.has_acted());
                prop_assert!(!requested.iter().any(|r| r.person == task.person));
            }
            let acted_unnamed = current
                .iter()
                .filter(|t| t.task.status.has_acted() && !requested.iter().any(|r| r.person == t.person))
                .count();
            prop_assert_eq!(plan.after.len(), requested.len() + acted_unnamed);
            let mut positions: Vec<i64> = plan.after.iter().map(|(p, _)| *p).collect();
            positions.dedup();
            prop_assert_eq!(positions.len(), plan.after.len());
            let mut after: Vec<Task> = plan.after.iter().map(|(_, t)| *t).collect();
            if let Some(turn) = turn {
                for waiting in after.iter().filter(|t| !t.status.has_acted()) {
                    prop_assert!(waiting.group >= turn);
                }
            }
            match settle(&mut after) {
                PlanOutcome::Rejected => prop_assert!(false, "a PENDING order has no rejection"),
                PlanOutcome::AllSigned => {
                    prop_assert!(after.iter().all(|t| t.status == TaskStatus::Signed));
                    prop_assert_eq!(PlanOutcome::AllSigned.final_state(), Some(OrderState::Accepted));
                }
                PlanOutcome::Open => {
                    let opened = after.iter().find(|t| t.status == TaskStatus::Pending).map(|t| t.group);
                    prop_assert!(opened.is_some());
                    if let (Some(opened), Some(turn)) = (opened, turn) {
                        prop_assert!(opened >= turn);
                    }
                }
            }
        }

        /// The plan is refused exactly when a rule is broken: a signer who acted left out, or a
        /// waiting signer put before the group whose turn it is (or an empty list).
        #[test]
        fn a_signer_plan_is_refused_exactly_when_a_rule_is_broken(
            order in proptest::collection::vec((1i64..5, proptest::bool::ANY), 1..8),
            list in proptest::collection::vec((0u8..12, 1i64..5), 0..10),
        ) {
            let current = settled_order(&order);
            let requested = requested(&list);
            let before: Vec<Task> = current.iter().map(|t| t.task).collect();
            let turn = current_group(&before);
            let drops_an_actor = current.iter().any(|t| {
                t.task.status.has_acted() && !requested.iter().any(|r| r.person == t.person)
            });
            let jumps_the_queue = turn.is_some_and(|turn| {
                requested.iter().any(|r| {
                    let acted = current.iter().any(|t| t.person == r.person && t.task.status.has_acted());
                    !acted && r.group < turn
                })
            });
            let broken = requested.is_empty() || drops_an_actor || jumps_the_queue;
            prop_assert_eq!(plan_signers(OrderState::Pending, &current, &requested).is_err(), broken);
        }

        /// A finished order refuses every change, whatever is asked.
        #[test]
        fn a_finished_order_refuses_every_plan(
            state in any_state(),
            signatures in 0u32..3,
            new_document in proptest::bool::ANY,
            cancel in proptest::bool::ANY,
            list in proptest::collection::vec((0u8..4, 1i64..3), 1..4),
        ) {
            let request = UpdateRequest { new_document, cancel };
            let update = plan_update(state, signatures, request);
            let signers = plan_signers(state, &settled_order(&[(1, false)]), &requested(&list));
            let signature = check_signature(state, TaskStatus::Pending, 0, 0);
            if state.is_final() {
                prop_assert!(matches!(update, Err(OrderRefusal::Closed(_))));
                prop_assert!(matches!(signers, Err(OrderRefusal::Closed(_))));
                prop_assert!(signature.is_err());
                prop_assert!(plan_rejection(state, TaskStatus::Pending).is_err());
            } else {
                prop_assert!(signature.is_ok());
                match update {
                    Ok(plan) => {
                        prop_assert!(!(new_document && signatures > 0));
                        prop_assert_eq!(plan.replace_document, new_document);
                        prop_assert_eq!(plan.finish, cancel.then_some(OrderState::Cancelled));
                    }
                    Err(refusal) => {
                        prop_assert_eq!(refusal, OrderRefusal::DocumentAlreadySigned);
                        prop_assert!(new_document && signatures > 0);
                    }
                }
            }
        }
    }
}
