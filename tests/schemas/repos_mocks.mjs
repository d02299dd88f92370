// Mocks for repos.graphql: the license service is down, so any selection of a license fails.
export default {
  License: () => {
    throw new Error("license service down");
  },
};
