/**
 * The cardholder the demo and the benchmarks push through the flow: Knot's `user` shape, as the
 * gateway's internal API takes it. No card data.
 */
export const SAMPLE_CARDHOLDER = {
  name: { first_name: "Ada", last_name: "Lovelace" },
  address: {
    street: "100 Main Street",
    city: "NEW YORK",
    region: "NY",
    postal_code: "10001",
    country: "US",
  },
  phone_number: "+14155550123",
};
