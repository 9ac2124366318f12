//! An API client that records what it saw: status, replay header and body of each answer.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::process::Account;

/// One answer, as the client saw it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub replayed: bool,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Status and body: what a replay must reproduce exactly.
    pub fn outcome(&self) -> (StatusCode, &[u8]) {
        (self.status, &self.body)
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api_key: String,
}

impl Client {
    pub fn new(account: &Account) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            api_key: account.api_key.clone(),
        }
    }

    /// A request to `url`, with or without an idempotency key and a JSON body; `Err` when no answer came.
    pub async fn send(
        &self,
        method: Method,
        url: String,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self.http.request(method, url).bearer_auth(&self.api_key);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let replayed = response.headers().get("idempotent-replayed").is_some();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await?.to_vec();
        Ok(Answer {
            status,
            replayed,
            content_type,
            body,
        })
    }

    /// Creates a template with a `first_name` merge field on `base` and returns its id.
    pub async fn create_template(&self, base: &str, name: &str) -> String {
        let body =
            json!({"name": name, "format": "postcard_a6", "content": "<p>Hi {{first_name}}</p>"});
        let answer = self
            .send(
                Method::POST,
                format!("{base}/v1/templates"),
                None,
                Some(&body),
            )
            .await
            .expect("create template");
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.json()["id"].as_str().expect("id").to_owned()
    }
}

/// The body of an order for `template_id`; `n` varies the recipient so that bodies differ between keys.
pub fn order(template_id: &str, n: usize) -> Value {
    json!({
        "template_id": template_id,
        "recipient": {
            "name": format!("Recipient {n}"),
            "street": "Keizersgracht",
            "house_number": "123A",
            "postal_code": "1015 CJ",
            "city": "Amsterdam",
            "country": "NL"
        },
        "merge_variables": {"first_name": "Anna"}
    })
}
