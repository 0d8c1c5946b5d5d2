//! `GET /api/v1/usage`: the caller's token usage, from the usage ledger (kept when
//! history is deleted), and where they stand in their token budget.

use axum::extract::State;
use axum::Json;
use bedrock_chat_core::{DailyUsage, Usage};
use chrono::{Days, Utc};
use serde::Serialize;

use super::error::ApiError;
use super::identity::Caller;
use super::AppState;

/// Days of daily usage the answer lists.
const DAYS_SHOWN: u64 = 30;

/// Where a caller stands in their token budget.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    /// Tokens per window.
    pub limit: u64,
    /// Tokens left in this window.
    pub remaining: u64,
    /// The window, in seconds.
    pub window_secs: u64,
    /// Seconds until the window resets.
    pub reset_after_secs: u64,
}

/// The usage answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    /// The caller.
    pub user: String,
    /// Conversations they have now.
    pub conversations: u64,
    /// Messages in them now.
    pub messages: u64,
    /// Model calls ever made.
    pub calls: u64,
    /// Tokens ever used.
    #[schema(value_type = super::openapi::UsageDoc)]
    pub usage: Usage,
    /// Tokens used today (UTC).
    #[schema(value_type = super::openapi::UsageDoc)]
    pub today: Usage,
    /// The last 30 days with usage, oldest first.
    #[schema(value_type = Vec<super::openapi::DailyUsageDoc>)]
    pub days: Vec<DailyUsage>,
    /// The token budget, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
}

/// `GET /api/v1/usage`.
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    tag = "usage",
    summary = "The caller's token usage and budget",
    responses(
        (status = 200, description = "Usage from the ledger", body = UsageView),
        (status = 401, description = "Missing or invalid credentials (with WWW-Authenticate)", body = super::error::ErrorBody),
        (status = 500, description = "Internal error", body = super::error::ErrorBody),
        (status = 501, description = "The store does not support this", body = super::error::ErrorBody),
        (status = 503, description = "A backend is unavailable (with Retry-After)", body = super::error::ErrorBody),
        (status = 504, description = "Timed out", body = super::error::ErrorBody)
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UsageView>, ApiError> {
    let store = state.service.store();
    let totals = store.usage(&caller.user).await?;
    let today = Utc::now().date_naive();
    let from = today
        .checked_sub_days(Days::new(DAYS_SHOWN - 1))
        .unwrap_or(today);
    let days = store.daily_usage(&caller.user, from, today).await?;
    let today_usage = days
        .iter()
        .find(|d| d.day == today)
        .map(|d| d.usage)
        .unwrap_or_default();
    let budget = match state.service.token_budget() {
        Some(budget) => {
            let decision = budget
                .check(&caller.budget_key, 0)
                .await
                .map_err(bedrock_chat_core::ChatError::from)?;
            Some(BudgetView {
                limit: decision.limit,
                remaining: decision.remaining,
                window_secs: decision.window_secs(),
                reset_after_secs: decision.reset_after_secs(),
            })
        }
        None => None,
    };
    Ok(Json(UsageView {
        user: caller.user.to_string(),
        conversations: totals.conversations,
        messages: totals.messages,
        calls: totals.calls,
        usage: totals.usage,
        today: today_usage,
        days,
        budget,
    }))
}
