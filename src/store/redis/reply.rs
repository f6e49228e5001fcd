//! Reading the script's answers: session ids as hex, Redis values as text and numbers, and the
//! answer and end reasons of each operation.

use ::redis::Value;

use super::{Answer, Gone, Kind, State, StoreError};
use crate::room::{AdmitHow, EndReason, SessionId};

pub(super) fn hex(id: &SessionId) -> String {
    id.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(s: &str) -> Option<SessionId> {
    if s.len() != 32 {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(SessionId::from_bytes(b))
}

pub(super) fn text(v: Option<&Value>) -> Result<String, StoreError> {
    match v {
        Some(Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(Value::SimpleString(s)) => Ok(s.clone()),
        Some(Value::Int(n)) => Ok(n.to_string()),
        other => Err(StoreError::Reply(format!("{other:?}"))),
    }
}

pub(super) fn int(v: Option<&Value>) -> Result<u64, StoreError> {
    match v {
        Some(Value::Int(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
        other => text(other)?
            .parse::<f64>()
            .map(|f| f.max(0.0) as u64)
            .map_err(|e| StoreError::Reply(e.to_string())),
    }
}

pub(super) fn signed(v: Option<&Value>) -> Result<i64, StoreError> {
    match v {
        Some(Value::Int(n)) => Ok(*n),
        other => Err(StoreError::Reply(format!("{other:?}"))),
    }
}

/// A count, or `None` for -1 (nothing happened).
pub(super) fn counted(v: Option<&Value>) -> Result<Option<usize>, StoreError> {
    let n = signed(v)?;
    Ok(usize::try_from(n).ok())
}

pub(super) fn end_reason(r: &str) -> Option<EndReason> {
    match r {
        "idle" => Some(EndReason::Idle),
        "max_session" => Some(EndReason::MaxSession),
        "no_show" => Some(EndReason::NoShow),
        "revoke" => Some(EndReason::Revoke),
        "leave" => Some(EndReason::Leave),
        _ => None,
    }
}

pub(super) fn gone(v: &[Value]) -> Result<Gone, StoreError> {
    Ok(match text(v.first())?.as_str() {
        "place" => Gone::Place,
        "slot" => Gone::Slot,
        _ => Gone::None,
    })
}

pub(super) fn answer(v: &[Value]) -> Result<Answer, StoreError> {
    let kind = match text(v.first())?.as_str() {
        "admit" => Kind::Admit,
        "wait" => Kind::Wait,
        "closed" => Kind::Closed,
        "expired" => Kind::Expired,
        "standing" => Kind::Standing,
        "unknown" => Kind::Unknown,
        "too_soon" => Kind::TooSoon,
        "over_budget" => Kind::OverBudget,
        other => return Err(StoreError::Reply(format!("answer {other:?}"))),
    };
    let state = match text(v.get(5))?.as_str() {
        "q" => Some(State::Queued),
        "r" => Some(State::Released),
        "a" => Some(State::Active),
        "m" => Some(State::Missed),
        _ => None,
    };
    let how = match text(v.get(4))?.as_str() {
        "immediate" => Some(AdmitHow::Immediate),
        "released" => Some(AdmitHow::Released),
        _ => None,
    };
    let position = signed(v.get(6))?;
    Ok(Answer {
        kind,
        session: unhex(&text(v.get(1))?),
        ticket: int(v.get(2))?,
        joined: int(v.get(3))? == 1,
        how,
        state,
        position: u64::try_from(position).ok().filter(|p| *p > 0),
        queue_depth: int(v.get(7))?,
        released_before: int(v.get(8))?,
        released_total: int(v.get(9))?,
        seen_ms: int(v.get(10))?,
        since_ms: int(v.get(11))?,
        active: int(v.get(12))?,
        released: int(v.get(13))?,
        now_ms: int(v.get(14))?,
        recent_releases: int(v.get(15))?,
        first_release_ms: Some(int(v.get(16))?).filter(|t| *t > 0),
        wait_ms: int(v.get(17))?,
        next_draw_ms: Some(int(v.get(18))?).filter(|t| *t > 0),
        drawn: int(v.get(19))?,
        pool: int(v.get(20))?,
        holding: int(v.get(21))? == 1,
    })
}
