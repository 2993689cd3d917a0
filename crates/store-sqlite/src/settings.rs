//! [`Settings`] for [`SqliteStore`]: call settings.

use std::sync::Arc;

use async_trait::async_trait;
use sip_settings_core::StoreError;
use sip_settings_core::forwarding::Forwarding;
use sip_settings_core::ids::AccountId;
use sip_settings_core::settings::{
    AcceptRules, Diversions, PhonebookEntry, RejectPattern, TemporaryRule, Voicemail,
};
use sip_settings_core::store::Settings;

use crate::SqliteStore;

#[async_trait]
impl Settings for SqliteStore {
    async fn get_diversions(&self, account: &AccountId) -> Result<Diversions, StoreError> {
        self.fast.diversions(account)
    }

    async fn get_forwarding(&self, account: &AccountId) -> Result<Arc<Forwarding>, StoreError> {
        self.fast.forwarding(account)
    }

    async fn get_accept_rules(&self, account: &AccountId) -> Result<AcceptRules, StoreError> {
        self.fast.accept_rules(account)
    }

    async fn get_temporary_rule(
        &self,
        account: &AccountId,
    ) -> Result<Option<TemporaryRule>, StoreError> {
        self.fast.temporary_rule(account)
    }

    async fn list_reject(&self, account: &AccountId) -> Result<Vec<RejectPattern>, StoreError> {
        self.fast.reject(account)
    }

    async fn get_voicemail(&self, account: &AccountId) -> Result<Option<Voicemail>, StoreError> {
        self.fast.voicemail(account)
    }

    async fn list_phonebook(&self, account: &AccountId) -> Result<Vec<PhonebookEntry>, StoreError> {
        self.fast.phonebook(account)
    }
}
