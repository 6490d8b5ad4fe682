//! A query-string extractor whose errors use the API's error shape and name the parameter
//! at fault, never the value sent (axum's own rejection is plain text and may quote it).

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| describe(&rejection.body_text()))
    }
}

/// axum words a failure as "Failed to deserialize query string: <parameter>: <reason>".
fn describe(text: &str) -> ApiError {
    let detail = text.split_once(": ").map_or("", |(_, rest)| rest);
    let message = match detail.split_once(": ") {
        Some((parameter, _)) => format!(
            "invalid query string: `{parameter}` has the wrong type or value; see the endpoint's parameters in docs/api.md"
        ),
        None => "invalid query string: it is not valid form-urlencoded text".to_owned(),
    };
    ApiError::invalid(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
        secret: Option<String>,
    }

    fn extract(uri: &str) -> Result<Page, ApiError> {
        let (mut parts, ()) = axum::http::Request::get(uri).body(()).unwrap().into_parts();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(ApiQuery::<Page>::from_request_parts(&mut parts, &()))
            .map(|ApiQuery(page)| page)
    }

    #[test]
    fn a_bad_value_names_the_parameter_but_not_the_value() {
        let err = extract("/x?limit=hunter2&secret=s").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(err.message.contains("`limit`"), "{}", err.message);
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }

    #[test]
    fn good_queries_pass() {
        let page = extract("/x?limit=5").unwrap();
        assert_eq!(page.limit, Some(5));
    }
}
