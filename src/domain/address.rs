//! Address: a postal address that satisfies every rule, and the input it is parsed from.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    country::CountryCode,
    input::member::{Member, UnknownMembers, members_of},
    input::validation::{Validator, text},
    schemas,
};

/// A postal address as a client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Anna de Vries", "street": "Keizersgracht", "house_number": "123A",
    "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"
}))]
pub struct AddressInput {
    /// The addressee.
    #[serde(default)]
    #[schema(schema_with = schemas::text_200, required = true)]
    pub name: Member<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_200)]
    pub company: Member<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::text_200, required = true)]
    pub street: Member<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::text_20, required = true)]
    pub house_number: Member<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::text_20, required = true)]
    pub postal_code: Member<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::text_100, required = true)]
    pub city: Member<String>,
    #[serde(default)]
    #[schema(value_type = CountryCode, required = true)]
    pub country: Member<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: UnknownMembers,
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

impl Address {
    /// The names of an address's members, read from its declaration above.
    pub fn members() -> &'static [&'static str] {
        members_of::<Self>()
    }
}

impl AddressInput {
    /// The address, or each broken rule recorded in `v` under this address's path.
    ///
    /// Takes the input apart member by member and builds every member of the address, so that a member added to
    /// only one of the two does not compile; a test holds their names equal.
    pub fn validate(self, v: &mut Validator) -> Option<Address> {
        let Self {
            name,
            company,
            street,
            house_number,
            postal_code,
            city,
            country,
            unknown,
        } = self;
        v.unknown::<Self>(unknown);
        let name = v.required_with("name", name, |name| text(name, 200));
        let company = v.optional_with("company", company, |company| text(company, 200));
        let street = v.required_with("street", street, |street| text(street, 200));
        let house_number = v.required_with("house_number", house_number, |n| text(n, 20));
        let postal_code = v.required_with("postal_code", postal_code, |code| text(code, 20));
        let city = v.required_with("city", city, |city| text(city, 100));
        let country = v.required_with("country", country, |code| CountryCode::parse(&code));
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn the_members_are_those_an_address_is_written_with() {
        let address: Address = serde_json::from_value(json!({
            "name": "Anna de Vries", "company": null, "street": "Keizersgracht", "house_number": "123A",
            "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"
        }))
        .unwrap();
        let Value::Object(written) = serde_json::to_value(address).unwrap() else {
            panic!("an address is written as an object");
        };
        let written: Vec<&str> = written.keys().map(String::as_str).collect();
        assert_eq!(Address::members(), written);
    }

    #[test]
    fn an_address_as_it_is_written_is_read_back_as_input() {
        let address: Address = serde_json::from_value(json!({
            "name": "Anna de Vries", "company": "Grachtenpost", "street": "Keizersgracht", "house_number": "123A",
            "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"
        }))
        .unwrap();
        let input: AddressInput =
            serde_json::from_value(serde_json::to_value(&address).unwrap()).unwrap();
        let mut v = Validator::new();
        let read = input.validate(&mut v);
        v.finish(|| Some(())).unwrap();
        assert_eq!(read, Some(address));
    }
}
