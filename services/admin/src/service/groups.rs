//! Doctor groups (admin).

use super::audit::record;
use super::{AdminService, active};
use crate::domain::text;
use crate::routing::router::RouterMsg;
use crate::store::{self, SaveGroupRow};
use carehub_nats::appointment::*;
use carehub_nats::{CallContext, Role, WireError};
use carehub_runtime::db::{StoreError, now_ms};

pub(super) fn group_view(g: &store::GroupRow, members: Vec<String>) -> Group {
    Group {
        id: g.id.clone(),
        name: g.name.clone(),
        specialty: g.specialty.clone(),
        strategy: g.strategy,
        accept_deadline_secs: g.accept_deadline_secs,
        members,
        version: g.version,
    }
}

impl AdminService {
    /// Creates or replaces a group (admin).
    ///
    /// # Errors
    /// `forbidden`, `validation_failed`, `conflict` for a stale version or a specialty another
    /// group already routes.
    pub(crate) async fn save_group(
        &self,
        ctx: &CallContext,
        r: SaveGroup,
    ) -> Result<Group, WireError> {
        let admin = active(ctx, Role::Admin)?;
        let name = text("name", &r.name, 100)?;
        let specialty = r
            .specialty
            .as_deref()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        if !(1..=7 * 86_400).contains(&r.accept_deadline_secs) {
            return Err(WireError::validation(
                "accept_deadline_secs: between 1 second and 7 days",
            ));
        }
        if r.members.is_empty() || r.members.len() > 50 {
            return Err(WireError::validation("members: 1 to 50 doctors"));
        }
        let mut seen = std::collections::HashSet::new();
        for m in &r.members {
            if !seen.insert(m) {
                return Err(WireError::validation("members: a doctor is listed twice"));
            }
            if store::doctor(self.db(), m).await?.is_none() {
                return Err(WireError::validation(format!(
                    "members: unknown doctor {m}"
                )));
            }
        }
        let id =
            r.id.clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        if r.id.is_some() && r.expected_version.is_none() {
            return Err(WireError::validation(
                "expected_version: required to replace a group",
            ));
        }
        let row = SaveGroupRow {
            id: &id,
            name: &name,
            specialty: specialty.as_deref(),
            strategy: r.strategy,
            accept_deadline_secs: r.accept_deadline_secs,
            members: &r.members,
            expected_version: r.expected_version,
        };
        match store::save_group(self.db(), &row, now_ms()).await {
            Ok(true) => {}
            Ok(false) if store::group(self.db(), &id).await?.is_none() => {
                return Err(WireError::not_found("group not found"));
            }
            Ok(false) => {
                return Err(WireError::conflict(
                    "the group was changed meanwhile; reload it",
                ));
            }
            Err(StoreError::Conflict(_)) => {
                return Err(WireError::conflict(
                    "another group already routes this specialty",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let action = if r.id.is_some() {
            "group.replace"
        } else {
            "group.create"
        };
        record(self.db(), admin, None, action, Some(&name)).await?;
        let _ = self
            .inner
            .router
            .cast(RouterMsg::GroupChanged(id.clone()).into());
        let (g, members) = store::group(self.db(), &id)
            .await?
            .ok_or_else(WireError::internal)?;
        Ok(group_view(&g, members))
    }

    /// Every group (any signed-in user: patients book groups).
    ///
    /// # Errors
    /// `unauthorized` without a principal.
    pub(crate) async fn list_groups(
        &self,
        ctx: &CallContext,
        _r: ListGroups,
    ) -> Result<GroupList, WireError> {
        ctx.caller()?;
        let groups = store::groups(self.db()).await?;
        Ok(GroupList {
            groups: groups.into_iter().map(|(g, m)| group_view(&g, m)).collect(),
        })
    }
}
