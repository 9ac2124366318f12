//! Address: a postal address that satisfies every rule, and the input it is parsed from.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    country::CountryCode,
    schemas,
    validation::{Validator, text},
};
/// A postal address as a client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Anna de Vries", "street": "Keizersgracht", "house_number": "123A",
    "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"
}))]
pub struct AddressInput {
    /// The addressee.
    #[schema(schema_with = schemas::text_200)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_200)]
    pub company: Option<String>,
    #[schema(schema_with = schemas::text_200)]
    pub street: String,
    #[schema(schema_with = schemas::text_20)]
    pub house_number: String,
    #[schema(schema_with = schemas::text_20)]
    pub postal_code: String,
    #[schema(schema_with = schemas::text_100)]
    pub city: String,
    #[schema(value_type = CountryCode)]
    pub country: String,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Anna de Vries", "company": null, "street": "Keizersgracht", "house_number": "123A",
    "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"
}))]
pub struct Address {
    pub name: String,
    #[schema(required = true)]
    pub company: Option<String>,
    pub street: String,
    pub house_number: String,
    pub postal_code: String,
    pub city: String,
    pub country: CountryCode,
}

impl AddressInput {
    /// The address, or each broken rule recorded in `v` under this address's path.
    pub fn validate(self, v: &mut Validator) -> Option<Address> {
        let name = v.check("name", text(self.name, 200));
        let company = match self.company {
            None => Some(None),
            Some(company) => v.check("company", text(company, 200)).map(Some),
        };
        let street = v.check("street", text(self.street, 200));
        let house_number = v.check("house_number", text(self.house_number, 20));
        let postal_code = v.check("postal_code", text(self.postal_code, 20));
        let city = v.check("city", text(self.city, 100));
        let country = v.check("country", CountryCode::parse(&self.country));
        Some(Address {
            name: name?,
            company: company?,
            street: street?,
            house_number: house_number?,
            postal_code: postal_code?,
            city: city?,
            country: country?,
        })
    }
}
