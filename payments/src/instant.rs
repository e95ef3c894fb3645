//! A gateway for development (`payments.gateway = "test"`, only with `--dev`): in memory,
//! no network, and every payment succeeds the moment it is created, as if the payer had
//! paid at once with a test card. The seat-map page pays through the real flow with it
//! (create the hold's payment, confirm with its id, checked against this gateway) without
//! Stripe.js or an account. It takes no money: never a production gateway.

use crate::{
    GatewayError, GatewayFuture, ListQuery, NewPayment, NewRefund, Page, Payment, PaymentGateway,
    PaymentStatus, Refund, RefundStatus,
};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Payments and refunds kept in memory at most (a limit on everything): past it the
/// oldest are forgotten, as a development gateway may.
const OBJECTS_MAX: usize = 100_000;

#[derive(Default)]
struct State {
    sequence: u64,
    payments: BTreeMap<String, Payment>,
    /// Idempotency key → payment id, or refund id.
    keys: BTreeMap<String, String>,
    refunds: BTreeMap<String, Refund>,
}

#[derive(Default)]
pub struct InstantGateway {
    state: Mutex<State>,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn api_error(status: u16, code: &str, message: &str) -> GatewayError {
    GatewayError::Api {
        status,
        kind: "invalid_request_error".into(),
        code: code.into(),
        message: message.into(),
    }
}

impl InstantGateway {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn create(&self, request: &NewPayment) -> Result<Payment, GatewayError> {
        let mut state = self.state();
        if let Some(payment) = state
            .keys
            .get(&request.idempotency_key)
            .and_then(|id| state.payments.get(id))
        {
            if payment.amount_cents != request.amount_cents || payment.currency != request.currency
            {
                return Err(api_error(
                    400,
                    "idempotency_error",
                    "the key was used with other parameters",
                ));
            }
            return Ok(payment.clone());
        }
        state.sequence += 1;
        let id = format!("pi_test{:010}", state.sequence);
        let payment = Payment {
            id: id.clone(),
            amount_cents: request.amount_cents,
            amount_received_cents: request.amount_cents,
            currency: request.currency.clone(),
            status: PaymentStatus::Succeeded,
            client_secret: Some(format!("{id}_secret_test")),
            hold_id: Some(request.hold_id.clone()),
            created_s: now_s(),
        };
        if state.payments.len() >= OBJECTS_MAX {
            state.payments.pop_first();
        }
        state
            .keys
            .insert(request.idempotency_key.clone(), id.clone());
        state.payments.insert(id, payment.clone());
        Ok(payment)
    }

    fn retrieve(&self, payment_id: &str) -> Result<Payment, GatewayError> {
        self.state()
            .payments
            .get(payment_id)
            .cloned()
            .ok_or_else(|| api_error(404, "resource_missing", "no such payment"))
    }

    fn refund_payment(&self, request: &NewRefund) -> Result<Refund, GatewayError> {
        let mut state = self.state();
        if let Some(refund) = state
            .keys
            .get(&request.idempotency_key)
            .and_then(|id| state.refunds.get(id))
        {
            return Ok(refund.clone());
        }
        let payment = state
            .payments
            .get(&request.payment_id)
            .cloned()
            .ok_or_else(|| api_error(400, "resource_missing", "no such payment"))?;
        if state
            .refunds
            .values()
            .any(|refund| refund.payment_id.as_deref() == Some(payment.id.as_str()))
        {
            return Err(api_error(
                400,
                "charge_already_refunded",
                "already refunded",
            ));
        }
        state.sequence += 1;
        let id = format!("re_test{:010}", state.sequence);
        let refund = Refund {
            id: id.clone(),
            payment_id: Some(payment.id),
            amount_cents: payment.amount_received_cents,
            currency: payment.currency,
            status: RefundStatus::Succeeded,
            created_s: now_s(),
        };
        if state.refunds.len() >= OBJECTS_MAX {
            state.refunds.pop_first();
        }
        state
            .keys
            .insert(request.idempotency_key.clone(), id.clone());
        state.refunds.insert(id, refund.clone());
        Ok(refund)
    }
}

/// Newest first, as Stripe lists.
fn page<T: Clone>(items: Vec<(u64, String, T)>, query: &ListQuery) -> Page<T> {
    let mut items: Vec<(u64, String, T)> = items
        .into_iter()
        .filter(|(created, _, _)| (query.from_s..query.to_s).contains(created))
        .collect();
    items.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let start = query.starting_after.as_ref().map_or(0, |after| {
        items
            .iter()
            .position(|(_, id, _)| id == after)
            .map_or(items.len(), |index| index + 1)
    });
    let limit = query.limit.clamp(1, 100) as usize;
    let chosen: Vec<T> = items[start..]
        .iter()
        .take(limit)
        .map(|(_, _, item)| item.clone())
        .collect();
    Page {
        has_more: items.len() > start + chosen.len(),
        items: chosen,
    }
}

impl PaymentGateway for InstantGateway {
    fn create_payment<'a>(&'a self, request: &'a NewPayment) -> GatewayFuture<'a, Payment> {
        Box::pin(async move { self.create(request) })
    }

    fn retrieve_payment<'a>(&'a self, payment_id: &'a str) -> GatewayFuture<'a, Payment> {
        Box::pin(async move { self.retrieve(payment_id) })
    }

    fn refund<'a>(&'a self, request: &'a NewRefund) -> GatewayFuture<'a, Refund> {
        Box::pin(async move { self.refund_payment(request) })
    }

    fn list_payments<'a>(&'a self, query: &'a ListQuery) -> GatewayFuture<'a, Page<Payment>> {
        Box::pin(async move {
            let items = self
                .state()
                .payments
                .values()
                .map(|payment| (payment.created_s, payment.id.clone(), payment.clone()))
                .collect();
            Ok(page(items, query))
        })
    }

    fn list_refunds<'a>(&'a self, query: &'a ListQuery) -> GatewayFuture<'a, Page<Refund>> {
        Box::pin(async move {
            let items = self
                .state()
                .refunds
                .values()
                .map(|refund| (refund.created_s, refund.id.clone(), refund.clone()))
                .collect();
            Ok(page(items, query))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(future: GatewayFuture<'_, T>) -> Result<T, GatewayError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn payments_succeed_at_once_idempotently_and_refund_once() {
        let gateway = InstantGateway::default();
        let request = NewPayment {
            amount_cents: 5000,
            currency: "EUR".into(),
            hold_id: "h_1".into(),
            idempotency_key: "hold_h_1".into(),
        };
        let payment = block_on(gateway.create_payment(&request)).unwrap();
        assert_eq!(
            (payment.status, payment.amount_received_cents),
            (PaymentStatus::Succeeded, 5000)
        );
        assert_eq!(block_on(gateway.create_payment(&request)).unwrap(), payment);
        let other = NewPayment {
            amount_cents: 1,
            ..request
        };
        assert!(block_on(gateway.create_payment(&other)).is_err());
        assert_eq!(
            block_on(gateway.retrieve_payment(&payment.id)).unwrap(),
            payment
        );
        assert!(block_on(gateway.retrieve_payment("pi_nope"))
            .unwrap_err()
            .is_not_found());
        let refund = NewRefund {
            payment_id: payment.id.clone(),
            reason: "hold_expired".into(),
            idempotency_key: "refund_1".into(),
        };
        let made = block_on(gateway.refund(&refund)).unwrap();
        assert_eq!(block_on(gateway.refund(&refund)).unwrap(), made);
        let again = NewRefund {
            idempotency_key: "refund_2".into(),
            ..refund
        };
        assert!(block_on(gateway.refund(&again)).is_err());
        let all = ListQuery {
            from_s: 0,
            to_s: u64::MAX,
            starting_after: None,
            limit: 100,
        };
        assert_eq!(
            block_on(gateway.list_payments(&all)).unwrap().items,
            [payment]
        );
        assert_eq!(block_on(gateway.list_refunds(&all)).unwrap().items, [made]);
    }
}
