//! A JSON body extractor whose errors use the API's error shape and never echo values from
//! the request (a misplaced password must not come back in an error message).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::ApiError;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large or could not be read (limit 1 MiB)",
            )
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(describe)
    }
}

fn describe(err: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let at = format!("line {} column {}", err.line(), err.column());
    let text = err.to_string();
    let message = match err.classify() {
        Category::Data
            if ["missing field", "unknown field", "duplicate field"]
                .iter()
                .any(|p| text.starts_with(p)) =>
        {
            // These messages name only the field, never a value.
            text.split(" at line").next().unwrap_or(&text).to_owned()
        }
        Category::Data => format!("a field has the wrong type or value ({at})"),
        Category::Syntax | Category::Eof => format!("the body is not valid JSON ({at})"),
        Category::Io => "the body could not be read".to_owned(),
    };
    ApiError::invalid(format!("invalid request body: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    #[test]
    fn errors_name_fields_but_never_values() {
        let err = describe(serde_json::from_str::<Login>(r#"{"email":"a"}"#).unwrap_err());
        assert!(
            err.message.contains("missing field `password`"),
            "{}",
            err.message
        );
        let err = describe(
            serde_json::from_str::<Login>(r#"{"email":"a","password":["SENTINEL"]}"#).unwrap_err(),
        );
        assert!(!err.message.contains("SENTINEL"), "{}", err.message);
        let err = describe(serde_json::from_str::<Login>("{nope").unwrap_err());
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
    }
}
