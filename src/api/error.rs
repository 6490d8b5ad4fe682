//! The API's error body: the operations' [`OpError`] rendered as JSON.

use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use crate::ops::OpError as ApiError;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
