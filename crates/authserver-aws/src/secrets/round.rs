//! One refresh round of the store: the labels, the current version when it changed, the
//! pending or previous version to accept beside it, and the swap into service.

use super::alternates::{self, Switch, Wanted};
use super::fetch::{self, Labels};
use super::state::State;
use super::{Inner, RefreshError, Refreshed};
use authserver_core::{AuditEvent, Snapshot};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Inner {
    /// One round: labels, the current value when it changed, the pending or previous version
    /// when one should be accepted, then the swap. Caller holds `flight`.
    pub(super) async fn round(&self) -> Result<Refreshed, RefreshError> {
        let (known, refused) = {
            let st = self.lock();
            let known = st.base.as_ref().map(|s| s.version().to_owned());
            (known, st.refused.clone())
        };
        let fetched = self.current(known.as_deref(), refused.as_ref()).await;
        let now = self.clock.now();
        let (labels, base) = match fetched {
            Ok(found) => found,
            Err(e) => {
                let mut st = self.lock();
                if let RefreshError::Invalid { version, .. } = &e {
                    st.refused = Some((version.clone(), e.clone()));
                }
                self.failures.fetch_add(1, Ordering::Relaxed);
                if let Some(error) = st.failed(now, &self.config, &e) {
                    self.audit(AuditEvent::StoreReloadFailed {
                        store: "secrets_manager",
                        error,
                    });
                }
                st.observe(now, &self.config);
                return Err(e);
            }
        };
        let wanted = self.wanted(labels.as_ref(), base.as_deref(), known.as_deref());
        let alternate = match &wanted {
            Some(w) => self.alternate(w).await,
            None => None,
        };
        let mut st = self.lock();
        st.expire_alternates(now, &self.config);
        let result = self.swap(&mut st, known, base, wanted.zip(alternate));
        st.succeeded(now, &self.config);
        st.observe(now, &self.config);
        Ok(result)
    }

    /// The labels (when the store follows rotations, or the version in service may have
    /// changed) and the current version's snapshot when it is not the one in service.
    async fn current(
        &self,
        known: Option<&str>,
        refused: Option<&(String, RefreshError)>,
    ) -> Result<(Option<Labels>, Option<Arc<Snapshot>>), RefreshError> {
        let refuse = |version: &str| match refused {
            Some((v, why)) if v == version => Err(why.clone()),
            _ => Ok(()),
        };
        let cfg = &self.config;
        let Some(known) = known else {
            // Cold start: the value in one round trip; the labels alongside when needed.
            let (labels, value) = if cfg.follows_rotation() {
                let (labels, value) = tokio::join!(
                    fetch::labels(&self.client, cfg),
                    fetch::value(&self.client, &cfg.secret_id, &cfg.retry, None)
                );
                let labels = labels
                    .map_err(|e| tracing::warn!(secret_id = %cfg.secret_id, error = %e, "cannot read the secret's staging labels; checking again at the next refresh"))
                    .ok();
                (labels, value?)
            } else {
                (
                    None,
                    fetch::value(&self.client, &cfg.secret_id, &cfg.retry, None).await?,
                )
            };
            refuse(&value.0)?;
            // A label read that raced a change of AWSCURRENT describes another version.
            let labels = labels.filter(|l| l.current == value.0);
            return Ok((labels, Some(Arc::new(self.parse(value.0, value.1).await?))));
        };
        let labels = fetch::labels(&self.client, cfg).await?;
        if labels.current == known {
            return Ok((Some(labels), None));
        }
        refuse(&labels.current)?;
        let known_snapshot = self.lock().known(&labels.current);
        let base = match known_snapshot {
            Some(snapshot) => snapshot,
            None => {
                let (version, value) =
                    fetch::value(&self.client, &cfg.secret_id, &cfg.retry, Some(&labels.current)).await?;
                refuse(&version)?;
                Arc::new(self.parse(version, value).await?)
            }
        };
        Ok((Some(labels), Some(base)))
    }

    /// Which alternate to serve. Records the pending version seen, and a switch of
    /// `AWSCURRENT` to it (the end of a rotation, which starts the grace period).
    fn wanted(
        &self,
        labels: Option<&Labels>,
        base: Option<&Snapshot>,
        known: Option<&str>,
    ) -> Option<Wanted> {
        let labels = labels?;
        let mut st = self.lock();
        if let (Some(new), Some(old)) = (base, known)
            && st.pending_seen.as_deref() == Some(new.version())
        {
            st.switch = Some(Switch {
                from: old.to_owned(),
                at: self.clock.now(),
            });
        }
        if labels.pending.is_some() {
            st.pending_seen = labels.pending.clone();
        }
        let wanted = alternates::wanted(
            labels,
            &self.config,
            st.switch.as_ref(),
            self.clock.now(),
            std::time::SystemTime::now(),
        );
        wanted.filter(|w| st.alt_refused.as_ref().is_none_or(|(v, _)| *v != w.version))
    }

    /// The snapshot of the alternate version: known already, or fetched and validated once. A
    /// failure only means no alternate for now (logged once per version; an invalid version is
    /// not fetched again): the current version serves regardless.
    async fn alternate(&self, wanted: &Wanted) -> Option<Arc<Snapshot>> {
        if let Some(known) = self.lock().known(&wanted.version) {
            return Some(known);
        }
        let cfg = &self.config;
        let fetched = fetch::value(&self.client, &cfg.secret_id, &cfg.retry, Some(&wanted.version)).await;
        let parsed = match fetched {
            Ok((version, value)) => self.parse(version, value).await,
            Err(e) => Err(e),
        };
        match parsed {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                self.lock().remember(snapshot.clone());
                Some(snapshot)
            }
            Err(e) => {
                tracing::warn!(
                    secret_id = %cfg.secret_id,
                    version = wanted.version,
                    kind = wanted.kind.as_str(),
                    error = %e,
                    "cannot use this version's passwords; serving AWSCURRENT alone"
                );
                if let RefreshError::Invalid { version, reason } = e {
                    self.lock().alt_refused = Some((version, reason));
                }
                None
            }
        }
    }

    /// Puts the new base and alternate into service when either changed.
    fn swap(
        &self,
        st: &mut State,
        known: Option<String>,
        base: Option<Arc<Snapshot>>,
        alternate: Option<(Wanted, Arc<Snapshot>)>,
    ) -> Refreshed {
        let loaded = base.is_some();
        if let Some(new) = base
            && let Some(old) = st.base.replace(new)
        {
            st.remember(old);
        }
        let Some(base) = st.base.clone() else {
            return Refreshed::Unchanged; // unreachable: a round that succeeds has a base
        };
        let applied = alternate.as_ref().map(|(w, _)| w.clone());
        let same_alternate = applied.as_ref().map(|w| (w.kind, &w.version))
            == st.applied.as_ref().map(|w| (w.kind, &w.version));
        if !loaded && same_alternate {
            st.applied = applied; // the deadline may have moved
            return Refreshed::Unchanged;
        }
        let served = match &alternate {
            Some((w, other)) => base.with_alternates(w.kind, other),
            None => base.without_alternates(),
        };
        let accepting = match (&alternate, served.alternates()) {
            (Some((w, _)), Some(set)) => {
                tracing::info!(
                    secret_id = %self.config.secret_id,
                    version = base.version(),
                    alternate = w.version,
                    kind = w.kind.as_str(),
                    service_accounts = set.len(),
                    grace_seconds = w.until.map(|u| u.saturating_duration_since(self.clock.now()).as_secs()),
                    "accepting service-account passwords of another version too"
                );
                Some((w.kind.as_str(), w.version.clone()))
            }
            _ => None,
        };
        if accepting.is_none() && st.applied.is_some() && !loaded {
            tracing::info!(secret_id = %self.config.secret_id, version = base.version(), "accepting AWSCURRENT passwords only");
        }
        st.applied = applied;
        st.snapshot = Some(Arc::new(served));
        if !loaded {
            return Refreshed::Alternates {
                version: base.version().to_owned(),
                accepting,
            };
        }
        let version = base.version().to_owned();
        let users = base.len();
        tracing::info!(
            secret_id = %self.config.secret_id,
            version,
            previous = known.as_deref(),
            users,
            "credential secret version loaded"
        );
        self.loads.fetch_add(1, Ordering::Relaxed);
        self.audit(AuditEvent::StoreVersionChanged {
            store: "secrets_manager",
            previous: known,
            version: version.clone(),
            users,
        });
        Refreshed::Loaded { version, users }
    }
}
