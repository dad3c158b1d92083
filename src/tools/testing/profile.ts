/** A cardholder profile in Knot's `user` shape. No card data. */
export const USER = {
  name: { first_name: "Ada", last_name: "Lovelace" },
  address: {
    street: "100 Main Street",
    street2: "Apt 4",
    city: "New York",
    region: "NY",
    postal_code: "10001",
    country: "US",
  },
  phone_number: "+14155550123",
};
