//! The `ThingRegistry` contract (`provisioner_testkit::things_contract`) on IoT Core over
//! moto (`IotThingRegistry`, one region, certificates registered without a CA), with its
//! device registry in DynamoDB. Each instance is a thing registry of its own (its own
//! SDK client and policy cache), as two Lambdas are.
//!
//! What moto cannot show (see `iot_registry.rs`): signatures against a registered CA and
//! policy evaluation; a connection refused for a revoked certificate is therefore checked
//! as IoT's status REVOKED and the principal detached.

use std::collections::HashMap;

use aws_sdk_iot::types::CertificateStatus as IotStatus;
use provisioner_core::{CertificateRecord, DeviceKey, ManifestRecord};
use provisioner_store_aws::config::AwsSettings;
use provisioner_store_aws::dynamodb::{
    DynamoDbRegistry, DynamoDbTables, ImportItem, ImportOptions,
};
use provisioner_store_aws::iot::{CaRegistration, IotThingRegistry};
use provisioner_testkit::things_contract::{self, ThingsBackend};

const REGION: &str = "us-east-1";

/// Tables and a policy of its own, over moto's IoT Core in one region.
struct Iot {
    sdk: aws_config::SdkConfig,
    settings: AwsSettings,
    registry: DynamoDbRegistry,
}

impl Iot {
    async fn new() -> Self {
        let sdk = super::sdk().await;
        let tag = format!("{:012x}", rand::random::<u64>() >> 16);
        let prefix = format!("things-{tag}-");
        let vars: HashMap<String, String> = [
            ("AWS_REGION", REGION.to_owned()),
            ("PROVISIONER_REGIONS", REGION.to_owned()),
            ("PROVISIONER_TABLE_PREFIX", prefix.clone()),
            ("PROVISIONER_IOT_POLICY", format!("contract-policy-{tag}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let settings = AwsSettings::from_vars(&vars).unwrap();
        let registry = DynamoDbRegistry::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            DynamoDbTables::with_prefix(&prefix),
        );
        registry.create_tables().await.unwrap();
        let backend = Self {
            sdk,
            settings,
            registry,
        };
        backend.things().create_registrations_table().await.unwrap();
        backend
    }

    fn iot(&self) -> aws_sdk_iot::Client {
        crate::support::iot(&self.sdk, REGION)
    }

    /// The certificate's status in IoT Core (`None`: not registered).
    async fn status(&self, certificate_id: &str) -> Option<IotStatus> {
        crate::support::iot_certificate_status(&self.iot(), certificate_id).await
    }
}

impl ThingsBackend for Iot {
    type Things = IotThingRegistry;
    type Registry = DynamoDbRegistry;

    fn things(&self) -> IotThingRegistry {
        IotThingRegistry::new(
            vec![(REGION.to_owned(), self.iot())],
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &self.settings,
            self.registry.clone(),
            CaRegistration::Unregistered,
        )
        .unwrap()
    }

    fn registry(&self) -> &DynamoDbRegistry {
        &self.registry
    }

    async fn add_device(&self, device_id: &str, key: &DeviceKey) {
        let items = [ImportItem {
            source: "things.csv",
            entry: Ok(ManifestRecord {
                device_id: device_id.to_owned(),
                public_key: key.clone(),
                line: 1,
            }),
        }];
        let options = ImportOptions {
            now: things_contract::NOW,
            ..ImportOptions::default()
        };
        let summary = self.registry.import(items, &options).await.unwrap();
        assert_eq!(summary.imported, 1);
    }

    /// `ListThingPrincipals`: certificate ARNs, whose last part is the certificate id.
    async fn principals(&self, device_id: &str) -> Vec<String> {
        match self
            .iot()
            .list_thing_principals()
            .thing_name(device_id)
            .send()
            .await
        {
            Ok(out) => out
                .principals()
                .iter()
                .map(|arn| arn.rsplit_once(":cert/").unwrap().1.to_owned())
                .collect(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Vec::new()
            }
            Err(e) => panic!("ListThingPrincipals: {e:?}"),
        }
    }

    /// IoT Core refuses it: REVOKED there, and no longer the thing's principal.
    async fn check_superseded(&self, device_id: &str, superseded: &CertificateRecord) {
        assert_eq!(
            self.status(&superseded.certificate_id).await,
            Some(IotStatus::Revoked)
        );
        let principals = self.principals(device_id).await;
        assert!(
            !principals.contains(&superseded.certificate_id),
            "{principals:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn iot_registering_again_leaves_one_principal() {
    things_contract::registering_again_leaves_one_principal(&Iot::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn iot_devices_registered_at_once_keep_their_own_certificates() {
    things_contract::devices_registered_at_once_keep_their_own_certificates(&Iot::new().await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn iot_a_new_certificate_replaces_the_superseded_one() {
    things_contract::a_new_certificate_replaces_the_superseded_one(&Iot::new().await).await;
}
