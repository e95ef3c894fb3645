//! The OpenAPI document of API v1, generated from the handlers' annotations and the
//! request/response types, served at `GET /v1/openapi.json`.

use crate::error::{ErrorBody, ErrorObject};
use crate::routes::{admin, ops, public, user, web};
use std::sync::OnceLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_string());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme("admin_key", bearer("A tenant's admin key"));
        components.add_security_scheme("operator_key", bearer("The operator key"));
        let mut user = Http::new(HttpAuthScheme::Bearer);
        user.bearer_format = Some("JWT".into());
        user.description = Some("HS256 JWT whose sub is the user id".into());
        components.add_security_scheme("user_token", SecurityScheme::Http(user));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Boxoffice API", version = "1", description = "Seat booking over a durable log: events, holds, bookings, waitlists, service desks."),
    paths(
        public::cities, public::events, public::venues, public::event, public::seats, web::stream,
        admin::create_event, admin::list_events, admin::get_event, admin::patch_event, admin::cancel_event, admin::checkin, admin::attendees,
        admin::create_desk, admin::desk,
        user::place_hold, user::get_hold, user::confirm_hold, user::release_hold,
        user::list_bookings, user::get_booking, user::cancel_booking,
        user::join_waitlist, user::get_waitlist, user::leave_waitlist,
        user::create_desk_ticket, user::confirm_desk_ticket, user::get_desk_ticket, user::cancel_desk_ticket,
        ops::healthz, ops::readyz, ops::metrics, ops::engine, ops::promote,
        web::demo_token,
    ),
    components(schemas(ErrorBody, ErrorObject)),
    modifiers(&Security),
    tags(
        (name = "public", description = "Reads without a token"),
        (name = "admin", description = "Tenant administration (admin key)"),
        (name = "holds", description = "Holds (user token)"),
        (name = "bookings", description = "Bookings (user token)"),
        (name = "waitlist", description = "Waitlist (user token)"),
        (name = "desks", description = "Service desks"),
        (name = "operations", description = "Health, readiness, metrics, engine control (operator key)"),
        (name = "demo", description = "The demo user switcher: only with the development user-token secret"),
    )
)]
struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = ApiDoc::openapi();
        document
            .paths
            .paths
            .entry("/v1/openapi.json".into())
            .or_insert_with(|| {
                let operation = utoipa::openapi::path::OperationBuilder::new()
                    .summary(Some("This document"))
                    .tag("operations")
                    .response(
                        "200",
                        utoipa::openapi::ResponseBuilder::new()
                            .description("OpenAPI 3.1 JSON")
                            .build(),
                    )
                    .build();
                utoipa::openapi::PathItem::new(utoipa::openapi::HttpMethod::Get, operation)
            });
        document
    })
}

#[cfg(test)]
mod tests {
    /// Every operation that takes an `Idempotency-Key` (every write) says that a key reused
    /// for another request is 422 `idempotency_key_reused`.
    #[test]
    fn every_write_lists_a_reused_idempotency_key() {
        let document = serde_json::to_value(super::document()).unwrap();
        let mut writes = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let keyed = operation["parameters"]
                    .as_array()
                    .is_some_and(|parameters| {
                        parameters
                            .iter()
                            .any(|parameter| parameter["name"] == "Idempotency-Key")
                    });
                if !keyed {
                    continue;
                }
                writes += 1;
                let description = operation["responses"]["422"]["description"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    description.contains("idempotency_key_reused"),
                    "{method} {path}: 422 says {description:?}"
                );
            }
        }
        assert_eq!(writes, 14, "the writes that take an Idempotency-Key");
    }
}
