//! Calls are counted, and faults injected, by an SDK interceptor ([`Tap`]) on a client: it
//! sees every HTTP attempt (retries included) with its `X-Amz-Target` operation. Injected
//! faults replace moto's real response with the error AWS sends (status, JSON body with
//! `__type`), so the SDK's own error parsing classifies them; the request still went to moto
//! over HTTP, and took effect unless the fault was injected with [`Wire::refuse_after`].

use aws_sdk_secretsmanager::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_secretsmanager::error::BoxError;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the wire saw, and faults to inject.
#[derive(Debug, Default)]
pub struct Wire {
    attempts: Mutex<HashMap<String, usize>>,
    faults: Mutex<Vec<Fault>>,
}

#[derive(Debug)]
struct Fault {
    operation: &'static str,
    status: u16,
    code: &'static str,
    skip: usize,
    remaining: usize,
    /// The request never takes effect (it reaches moto as an unknown operation); otherwise it
    /// does and only the answer is replaced (an answer lost after the work was done).
    blocked: bool,
}

impl Wire {
    /// HTTP attempts of `operation` so far (retries included).
    pub fn attempts(&self, operation: &str) -> usize {
        self.attempts.lock().unwrap().get(operation).copied().unwrap_or(0)
    }

    /// Every operation attempted so far, sorted.
    pub fn operations(&self) -> Vec<String> {
        let mut ops: Vec<String> = self.attempts.lock().unwrap().keys().cloned().collect();
        ops.sort();
        ops
    }

    /// Makes the next `times` answers to `operation` the AWS error `code` with `status` (the
    /// requests themselves still reach moto and take effect).
    pub fn inject(&self, operation: &'static str, status: u16, code: &'static str, times: usize) {
        self.inject_after(operation, 0, status, code, times);
    }

    /// Like [`Self::inject`], after `skip` answers to `operation` went through untouched.
    pub fn inject_after(
        &self,
        operation: &'static str,
        skip: usize,
        status: u16,
        code: &'static str,
        times: usize,
    ) {
        self.push(operation, skip, status, code, times, false);
    }

    /// Like [`Self::inject_after`], but the failed requests take no effect: a real refusal.
    pub fn refuse_after(
        &self,
        operation: &'static str,
        skip: usize,
        status: u16,
        code: &'static str,
        times: usize,
    ) {
        self.push(operation, skip, status, code, times, true);
    }

    fn push(
        &self,
        operation: &'static str,
        skip: usize,
        status: u16,
        code: &'static str,
        times: usize,
        blocked: bool,
    ) {
        self.faults.lock().unwrap().push(Fault {
            operation,
            status,
            code,
            skip,
            remaining: times,
            blocked,
        });
    }

    /// The fault due for this attempt of `op`, if any: (status, code, blocked).
    fn due(&self, op: &str) -> Option<(u16, &'static str, bool)> {
        let mut faults = self.faults.lock().unwrap();
        let fault = faults.iter_mut().find(|f| f.operation == op && f.remaining > 0)?;
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        fault.remaining -= 1;
        Some((fault.status, fault.code, fault.blocked))
    }
}

fn operation(headers: &aws_smithy_runtime_api::http::Headers) -> String {
    headers
        .get("x-amz-target")
        .and_then(|t| {
            t.strip_prefix("secretsmanager.")
                .or_else(|| t.strip_prefix("DynamoDB_20120810."))
        })
        .unwrap_or("unknown")
        .to_owned()
}

/// The fault decided for the attempt in flight (none: moto's answer stands), kept in the
/// config bag between hooks.
#[derive(Debug, Clone)]
struct Injected(Option<(u16, &'static str)>);

impl Storable for Injected {
    type Storer = StoreReplace<Self>;
}

/// The interceptor that feeds a [`Wire`].
#[derive(Debug)]
pub struct Tap(
    /// The record the tap feeds.
    pub Arc<Wire>,
);

impl Intercept for Tap {
    fn name(&self) -> &'static str {
        "test-wire-tap"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(context.request().headers());
        *self.0.attempts.lock().unwrap().entry(op.clone()).or_default() += 1;
        // The request is gone by the time the response arrives: remember the fault, if any.
        let due = self.0.due(&op);
        if let Some((_, _, true)) = due {
            // moto refuses an operation it does not know, and changes nothing.
            context
                .request_mut()
                .headers_mut()
                .insert("x-amz-target", "secretsmanager.RefusedByTheTest");
        }
        cfg.interceptor_state()
            .store_put(Injected(due.map(|(status, code, _)| (status, code))));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Injected(Some((status, code)))) = cfg.load::<Injected>().cloned() else {
            return Ok(());
        };
        let body = format!(r#"{{"__type":"{code}","message":"injected by the test"}}"#);
        let mut response = aws_sdk_secretsmanager::config::http::HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(body),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        *context.response_mut() = response;
        Ok(())
    }
}
