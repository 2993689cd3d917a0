//! The address rules of [`Services`]: aliases (in the account's domain, within the alias limit)
//! and ENUM numbers.

use super::*;

impl Services {
    // ----- aliases -----

    /// The aliases of an account, sorted.
    pub async fn aliases(&self, id: &AccountId) -> Result<Vec<AccountId>, ServiceError> {
        Ok(self
            .store()
            .list_aliases(Some(id))
            .await?
            .into_iter()
            .map(|(alias, _)| alias)
            .collect())
    }

    /// `add_alias`: adds `username@<own domain>` to the account.
    pub async fn add_own_alias(
        &self,
        id: &AccountId,
        username: &str,
    ) -> Result<AccountId, ServiceError> {
        if username.trim().is_empty() {
            return Err(ServiceError::invalid("username", "is missing"));
        }
        let user = UserPart::parse_for("username", username.trim())?;
        let alias = AccountId::new(user, id.domain().clone());
        self.add_alias_for("username", &alias, id).await?;
        Ok(alias)
    }

    /// Adds an alias (operator): it must be in the account's domain and free.
    pub async fn add_alias(&self, alias: &AccountId, id: &AccountId) -> Result<(), ServiceError> {
        self.add_alias_for("alias", alias, id).await
    }

    /// Adds an alias; refusals name the parameter `field`.
    async fn add_alias_for(
        &self,
        field: &str,
        alias: &AccountId,
        id: &AccountId,
    ) -> Result<(), ServiceError> {
        if alias.domain() != id.domain() {
            return Err(ServiceError::invalid(
                "alias",
                format!("{alias} must be in the account's domain {}", id.domain()),
            ));
        }
        let mut w = self.begin(id).await?;
        let limit = self.config().alias_limit;
        let op = AccountOp::AddAlias {
            alias: alias.clone(),
            limit,
        };
        match w.apply(op).await? {
            Applied::Alias(AliasOutcome::Added) => {
                w.journal("alias", None, Some(alias.to_string()));
                w.commit().await
            }
            Applied::Alias(AliasOutcome::Taken) => Err(ServiceError::Conflict(format!(
                "{field} {}: {alias} is already taken",
                alias.user()
            ))),
            Applied::Alias(AliasOutcome::LimitReached) => Err(ServiceError::Conflict(format!(
                "{field} {}: {id} has {limit} aliases already, at most {limit} aliases are allowed",
                alias.user()
            ))),
            other => Err(ServiceError::Internal(format!(
                "adding an alias answered {other:?}"
            ))),
        }
    }

    /// Removes an alias (operator).
    pub async fn remove_alias(&self, alias: &AccountId) -> Result<(), ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no alias {alias}"));
        let owner = match self.store().resolve_address(alias).await? {
            Some(owner) if &owner != alias => owner,
            _ => return Err(not_found()),
        };
        let mut w = self.begin(&owner).await?;
        if !w
            .apply(AccountOp::RemoveAlias(alias.clone()))
            .await?
            .existed()
        {
            // It moved to another account before the lock was taken.
            return Err(not_found());
        }
        w.journal("alias", Some(alias.to_string()), None);
        w.commit().await
    }

    /// `(alias, account)` pairs (of one account).
    pub async fn list_aliases(
        &self,
        id: Option<&AccountId>,
    ) -> Result<Vec<(AccountId, AccountId)>, ServiceError> {
        Ok(self.store().list_aliases(id).await?)
    }

    // ----- ENUM -----

    /// The ENUM numbers of an account, sorted.
    pub async fn enum_numbers(&self, id: &AccountId) -> Result<Vec<E164>, ServiceError> {
        Ok(self
            .store()
            .list_enum(Some(id))
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    /// Maps a number to an account (operator).
    pub async fn add_enum(&self, number: &E164, id: &AccountId) -> Result<(), ServiceError> {
        let mut w = self.begin(id).await?;
        w.apply(AccountOp::AddEnum(number.clone()))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    ServiceError::Conflict(format!("{number} is already mapped"))
                }
                StoreError::NotFound(_) => ServiceError::NotFound(format!("no account {id}")),
                other => other.into(),
            })?;
        w.journal("enum", None, Some(number.to_string()));
        w.commit().await
    }

    /// Removes a number mapping (operator).
    pub async fn remove_enum(&self, number: &E164) -> Result<(), ServiceError> {
        let not_found = || ServiceError::NotFound(format!("{number} is not mapped"));
        let owner = self
            .store()
            .resolve_enum(number)
            .await?
            .ok_or_else(not_found)?;
        let mut w = self.begin(&owner).await?;
        if !w
            .apply(AccountOp::RemoveEnum(number.clone()))
            .await?
            .existed()
        {
            return Err(not_found());
        }
        w.journal("enum", Some(number.to_string()), None);
        w.commit().await
    }

    /// `(number, account)` pairs (of one account).
    pub async fn list_enum(
        &self,
        id: Option<&AccountId>,
    ) -> Result<Vec<(E164, AccountId)>, ServiceError> {
        Ok(self.store().list_enum(id).await?)
    }

    /// Removes one of the account's own aliases (a subscriber's request): an alias of another
    /// account is answered as not found.
    pub async fn remove_own_alias(
        &self,
        id: &AccountId,
        alias: &AccountId,
    ) -> Result<(), ServiceError> {
        match self.store().resolve_address(alias).await? {
            Some(owner) if &owner == id && alias != id => self.remove_alias(alias).await,
            _ => Err(ServiceError::NotFound(format!("{id} has no alias {alias}"))),
        }
    }
}
