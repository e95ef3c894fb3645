//! Stripe's HTTP API, the few endpoints Boxoffice needs, as a thin typed client over
//! `reqwest`: PaymentIntents (create, retrieve, list), Refunds (create, list). Requests are
//! form-encoded with Stripe's bracketed keys (`metadata[hold_id]`), authenticated with the
//! secret key as a bearer token, and every creating call sends `Idempotency-Key`.
//!
//! Why not `async-stripe`: it generates the whole API (hundreds of types, minutes of build
//! on this project's two-core machines) for five calls whose few fields are typed here;
//! its versions also lag Stripe's API. The client below is tested against stripe-mock,
//! which validates every request against Stripe's OpenAPI specification.

use crate::{
    GatewayError, GatewayFuture, ListQuery, NewPayment, NewRefund, Page, Payment, PaymentGateway,
    PaymentStatus, Refund, RefundStatus, SecretKey,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Stripe's API, live or test mode (the key decides).
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";

#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// `https://api.stripe.com`, or stripe-mock's / a fake's address in tests.
    pub api_base: String,
    pub secret_key: SecretKey,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct StripeClient {
    http: reqwest::Client,
    api_base: String,
    secret_key: SecretKey,
}

impl StripeClient {
    pub fn new(config: StripeConfig) -> Result<StripeClient, GatewayError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("boxoffice-payments/1")
            .build()
            .map_err(|error| GatewayError::Transport(error.to_string()))?;
        Ok(StripeClient {
            http,
            api_base: config.api_base.trim_end_matches('/').to_string(),
            secret_key: config.secret_key,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, GatewayError> {
        let response = request
            .bearer_auth(self.secret_key.expose())
            .send()
            .await
            .map_err(|error| GatewayError::Transport(describe(error)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|error| GatewayError::Transport(describe(error)))?;
        if !(200..300).contains(&status) {
            let error = serde_json::from_slice::<ErrorBody>(&body).ok();
            return Err(match error {
                Some(ErrorBody { error }) => GatewayError::Api {
                    status,
                    kind: error.kind.unwrap_or_default(),
                    code: error.code.unwrap_or_default(),
                    message: error.message.unwrap_or_default(),
                },
                None => GatewayError::Api {
                    status,
                    kind: String::new(),
                    code: String::new(),
                    message: String::from_utf8_lossy(&body).chars().take(200).collect(),
                },
            });
        }
        serde_json::from_slice(&body).map_err(|error| GatewayError::Decode(error.to_string()))
    }

    async fn create_payment_intent(&self, request: &NewPayment) -> Result<Payment, GatewayError> {
        let form = [
            ("amount", request.amount_cents.to_string()),
            ("currency", request.currency.to_ascii_lowercase()),
            ("metadata[hold_id]", request.hold_id.clone()),
            ("automatic_payment_methods[enabled]", "true".to_string()),
        ];
        let intent: PaymentIntent = self
            .send(
                self.http
                    .post(self.url("/v1/payment_intents"))
                    .header("Idempotency-Key", &request.idempotency_key)
                    .form(&form),
            )
            .await?;
        intent.into_payment()
    }

    async fn retrieve_payment_intent(&self, payment_id: &str) -> Result<Payment, GatewayError> {
        if !id_valid(payment_id) {
            return Err(GatewayError::Api {
                status: 404,
                kind: "invalid_request_error".into(),
                code: "resource_missing".into(),
                message: "not a payment id".into(),
            });
        }
        let intent: PaymentIntent = self
            .send(
                self.http
                    .get(self.url(&format!("/v1/payment_intents/{payment_id}"))),
            )
            .await?;
        intent.into_payment()
    }

    async fn create_refund(&self, request: &NewRefund) -> Result<Refund, GatewayError> {
        let form = [
            ("payment_intent", request.payment_id.clone()),
            ("metadata[reason]", request.reason.clone()),
        ];
        let refund: StripeRefund = self
            .send(
                self.http
                    .post(self.url("/v1/refunds"))
                    .header("Idempotency-Key", &request.idempotency_key)
                    .form(&form),
            )
            .await?;
        refund.into_refund()
    }

    async fn list<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &ListQuery,
    ) -> Result<StripeList<T>, GatewayError> {
        let mut parameters = vec![
            ("created[gte]", query.from_s.to_string()),
            ("created[lt]", query.to_s.to_string()),
            ("limit", query.limit.clamp(1, 100).to_string()),
        ];
        if let Some(after) = &query.starting_after {
            parameters.push(("starting_after", after.clone()));
        }
        self.send(self.http.get(self.url(path)).query(&parameters))
            .await
    }
}

impl PaymentGateway for StripeClient {
    fn create_payment<'a>(&'a self, request: &'a NewPayment) -> GatewayFuture<'a, Payment> {
        Box::pin(self.create_payment_intent(request))
    }

    fn retrieve_payment<'a>(&'a self, payment_id: &'a str) -> GatewayFuture<'a, Payment> {
        Box::pin(self.retrieve_payment_intent(payment_id))
    }

    fn refund<'a>(&'a self, request: &'a NewRefund) -> GatewayFuture<'a, Refund> {
        Box::pin(self.create_refund(request))
    }

    fn list_payments<'a>(&'a self, query: &'a ListQuery) -> GatewayFuture<'a, Page<Payment>> {
        Box::pin(async move {
            let list: StripeList<PaymentIntent> = self.list("/v1/payment_intents", query).await?;
            Ok(Page {
                items: list
                    .data
                    .into_iter()
                    .map(PaymentIntent::into_payment)
                    .collect::<Result<_, _>>()?,
                has_more: list.has_more,
            })
        })
    }

    fn list_refunds<'a>(&'a self, query: &'a ListQuery) -> GatewayFuture<'a, Page<Refund>> {
        Box::pin(async move {
            let list: StripeList<StripeRefund> = self.list("/v1/refunds", query).await?;
            Ok(Page {
                items: list
                    .data
                    .into_iter()
                    .map(StripeRefund::into_refund)
                    .collect::<Result<_, _>>()?,
                has_more: list.has_more,
            })
        })
    }
}

/// An id goes into a path: letters, digits and `_` only.
fn id_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// What went wrong, with its causes, without the URL (a URL never holds the key, but a
/// query could hold ids a log has no need of).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Deserialize)]
struct ErrorBody {
    error: StripeErrorDetail,
}

#[derive(Deserialize)]
struct StripeErrorDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct StripeList<T> {
    data: Vec<T>,
    has_more: bool,
}

/// The fields of Stripe's PaymentIntent object that Boxoffice reads.
#[derive(Deserialize)]
pub(crate) struct PaymentIntent {
    id: String,
    amount: u64,
    #[serde(default)]
    amount_received: u64,
    currency: String,
    status: String,
    client_secret: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    created: u64,
}

impl PaymentIntent {
    pub(crate) fn into_payment(self) -> Result<Payment, GatewayError> {
        let status = match self.status.as_str() {
            "succeeded" => PaymentStatus::Succeeded,
            "canceled" => PaymentStatus::Canceled,
            "requires_payment_method"
            | "requires_confirmation"
            | "requires_action"
            | "processing"
            | "requires_capture" => PaymentStatus::Pending,
            other => {
                return Err(GatewayError::Decode(format!(
                    "payment intent {}: unknown status {other:?}",
                    self.id
                )))
            }
        };
        Ok(Payment {
            id: self.id,
            amount_cents: self.amount,
            amount_received_cents: self.amount_received,
            currency: self.currency.to_ascii_uppercase(),
            status,
            client_secret: self.client_secret,
            hold_id: self.metadata.get("hold_id").cloned(),
            created_s: self.created,
        })
    }
}

#[derive(Deserialize)]
struct StripeRefund {
    id: String,
    amount: u64,
    currency: String,
    payment_intent: Option<String>,
    status: Option<String>,
    created: u64,
}

impl StripeRefund {
    fn into_refund(self) -> Result<Refund, GatewayError> {
        let status = match self.status.as_deref() {
            Some("succeeded") => RefundStatus::Succeeded,
            Some("pending") | Some("requires_action") | None => RefundStatus::Pending,
            Some("failed") => RefundStatus::Failed,
            Some("canceled") => RefundStatus::Canceled,
            Some(other) => {
                return Err(GatewayError::Decode(format!(
                    "refund {}: unknown status {other:?}",
                    self.id
                )))
            }
        };
        Ok(Refund {
            id: self.id,
            payment_id: self.payment_intent,
            amount_cents: self.amount,
            currency: self.currency.to_ascii_uppercase(),
            status,
            created_s: self.created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_paths_are_plain() {
        for (id, valid) in [
            ("pi_123abc", true),
            ("", false),
            ("pi/../x", false),
            ("pi_1?x=1", false),
        ] {
            assert_eq!(id_valid(id), valid, "{id}");
        }
    }
}
